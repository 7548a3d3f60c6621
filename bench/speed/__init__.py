"""Speed benchmarks: each prints a table and writes JSON under bench/results/ (``python -m bench.run_all``)."""
