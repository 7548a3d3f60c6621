"""Benchmarks, accuracy references and tuning scripts (run from the repository root as modules:
``python -m bench.run_all``, ``python -m bench.speed.bench_streams``, ...). ``bench.common`` is their shared
helper module."""
