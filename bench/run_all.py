"""Run every benchmark, one after the other, and gather their results.

Each bench runs as its own process (a crash, a hang past ``--timeout`` or a missing dependency is
recorded as that bench's failure, and the next one runs) with its JSON written under
``bench/results/``. Gathered: bench/results/all.json (per bench: command, status, seconds, load average
before and after, its headline figures and its whole JSON) and bench/results/all.md (a markdown table,
also printed). ``--quick`` runs each bench with small settings: a smoke run of the whole suite.

    python -m bench.run_all                      # the full suite (about an hour on the 2-vCPU VM)
    python -m bench.run_all --quick              # every bench, small settings (a few minutes)
    python -m bench.run_all --only streams latency
    python -m bench.run_all --skip events transport --out-dir /tmp/bench

bench/speed/gpu_check.py runs only where torch sees a CUDA device (it is skipped, and said so, elsewhere);
bench/accuracy/reference_baselines.py is an accuracy reference, not a speed bench, and is not run here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import REPO, RESULTS, load_average, machine, write_json


@dataclass(frozen=True)
class Bench:
    """One benchmark script: its arguments (full and quick), how it is told where to write its JSON."""

    name: str
    script: str  # module under bench/ ("speed.bench_streams"), or a script path ending in .py
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    out_flag: str = "--out"
    what: str = ""
    needs_gpu: bool = False
    extra_env: dict = field(default_factory=dict)


BENCHES: tuple[Bench, ...] = (
    Bench("streams", "speed.bench_streams", ("--budget-s", "90"), ("--quick",),
          what="streams per core in real time, batched vs unbatched"),
    Bench("streams_no_readings", "speed.bench_streams",
          ("--readings", "--batches", "1", "4", "--budget-s", "90", "--repeats", "2"),
          ("--quick", "--readings", "--batches", "1"),
          what="the same without the pitch reading (what the DSP reading costs)"),
    Bench("latency", "speed.bench_latency", (), ("--quick",),
          what="end-to-end latency capture -> gRPC subscriber, 1 vs many streams"),
    Bench("model", "speed.bench_model", ("--ks", "8", "16", "--seconds", "5", "10", "--repeats", "7"),
          ("--ks", "8", "--seconds", "5", "--repeats", "3", "--decode-tokens", "4"),
          what="CoAT prefill vs the base model (no thinking), decode speed"),
    Bench("service", "speed.bench_service", (), ("--streams", "2", "--seconds", "8", "--repeats", "1"),
          what="whole service vs bare model stage on the same windows"),
    Bench("transport", "speed.bench_transport", ("--streams", "250", "1000", "--seconds", "6"),
          ("--streams", "50", "--seconds", "2", "--warmup", "1"), out_flag="--json",
          what="worker ingest: concurrent streams with zero loss (no-op model)"),
    Bench("events", "speed.bench_events", (),
          ("--subscribers", "20", "--rate", "50", "--seconds", "2", "--client-procs", "1", "--drain", "20",
           "--skip-write-rate"),
          what="event log write rate and gRPC fan-out latency"),
    Bench("experts", "speed.bench_experts", (), ("--seconds", "5", "--rounds", "3"),
          what="audio experts, x real time vs an STFT baseline"),
    Bench("readings", "speed.bench_readings", (), ("--seconds", "5", "--batches", "1", "--rounds", "3"),
          what="per-window pitch evidence: batched 8 kHz YIN vs the 10 ms pitch expert"),
    Bench("encoder_onnx", "speed.bench_encoder_onnx", (), ("--repeats", "3", "--batches", "1"),
          what="audio encoder in onnxruntime vs torch"),
    Bench("gpu_check", "speed.gpu_check", (), ("--tiny",), needs_gpu=True,
          what="7B-shaped model in NF4 on a GPU, per stage"),
)


# ---- headline figures per bench (defensive: a bench's JSON may change shape) ---------------------
def _streams(d: dict) -> str:
    base = str(d["baseline_max_batch"])
    parts = [f"max_batch {b}: {s['median']:.0f} [{s['min']:.0f}..{s['max']:.0f}] streams"
             for b, s in d["streams"].items() if s.get("median") is not None]
    ratios = [f"x{r['median']:.2f} (max_batch {b} / {base})" for b, r in d["ratio_over_unbatched"].items()
              if r.get("median") is not None]
    if d.get("cache_speedup") is not None:
        ratios.append(f"cache_speedup x{d['cache_speedup']:.2f}")
    if d.get("streams_per_core") is not None:
        ratios.append(f"streams_per_core {d['streams_per_core']:.0f}")
    return "; ".join(parts + ratios) + f"; {d['window_s']:g} s windows, {d['hop_s']:g} s hop"


def _latency(d: dict) -> str:
    t = d["latency_s"]
    out = [f"{n} stream(s): p50 {t[n]['total']['p50']['median']:.3f} s, p99 {t[n]['total']['p99']['median']:.3f} s"
           for n in t]
    r = d["ratio_many_over_one"]
    return "; ".join(out) + f"; many/1 p50 x{r['p50']['median']:.2f}, p99 x{r['p99']['median']:.2f}"


def _model(d: dict) -> str:
    return "; ".join(f"K={r['K']} {r['seconds']:g} s: prefill x{r['ratio']:.3f} vs base (expected "
                     f"{r['expected_ratio']:.3f}), decode {r['decode_tok_s_thinking']:.0f}/"
                     f"{r['decode_tok_s_plain']:.0f} tok/s" for r in d["rows"])


def _service(d: dict) -> str:
    return (f"service/bare x{d['service_over_bare']:.2f}; {d['audio_x_realtime_service']:.1f}x real time "
            f"({d['streams']} streams)")


def _transport(d: dict) -> str:
    s = d.get("summary", {})
    cur = s.get("current", s)
    return ", ".join(f"{k} {v}" for k, v in cur.items()) if isinstance(cur, dict) else json.dumps(s)[:200]


def _events(d: dict) -> str:
    runs = d["runs"]  # one {"after": ..., "before": ...} per repeat
    after = (runs[-1] if isinstance(runs, list) else runs)["after"]
    out = [f"{r['subscribers']} sub(s): p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
           for r in (after.get("baseline_1_subscriber"), after.get("fanout")) if r]
    if d.get("write_rate_single"):
        out.append(f"log writes {d['write_rate_single']:.0f}/s")
    return "; ".join(out)


def _experts(d: dict) -> str:
    return ", ".join(f"{e['expert']} {e['x_realtime']:.0f}x" for e in d["experts"]) + \
        f"; cache hit x{d['cache_speedup']:.0f}"


def _encoder(d: dict) -> str:
    return "; ".join(f"{r['size']} B={r['batch']}: ort/torch x{r['ratio_ort_over_torch']:.2f}" for r in d["rows"])


HEADLINES = {"streams": _streams, "streams_no_readings": _streams, "latency": _latency, "model": _model, "service": _service,
             "transport": _transport, "events": _events, "experts": _experts, "encoder_onnx": _encoder}


def headline(name: str, data: dict | None) -> str:
    fn = HEADLINES.get(name)
    if not data or fn is None:
        return ""
    try:
        return fn(data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return "(figures: see its JSON)"


# ---- running --------------------------------------------------------------------------------------
def has_cuda() -> bool:
    """A CUDA device torch can use; without an NVIDIA driver on the host, known without importing torch."""
    if not (Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi")):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def run_bench(b: Bench, quick: bool, out_dir: Path, timeout: float, python: str) -> dict:
    out = out_dir / f"{b.name}.json"
    # a module under bench/ runs as `python -m bench.<module>` from the repository root; a path (tests) as it is
    target = [b.script] if b.script.endswith(".py") else ["-m", f"bench.{b.script}"]
    cmd = [python, *target, *(b.quick if quick else b.full), b.out_flag, str(out)]
    shown = " ".join(["python", *cmd[1:]])
    rec = {"name": b.name, "what": b.what, "command": shown, "json": str(out), "load_before": load_average()}
    if b.needs_gpu and not has_cuda():
        rec.update(status="skipped", reason="no CUDA device here; run it on a GPU machine (see its docstring)",
                   seconds=0.0, load_after=load_average())
        return rec
    if out.exists():
        out.unlink()  # a stale file must not pass for this run's result
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **b.extra_env}
    t = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        rc, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc = None
        stdout = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    rec["seconds"] = round(time.monotonic() - t, 1)
    rec["load_after"] = load_average()
    rec["stdout_tail"] = stdout[-3000:]
    data = None
    if out.is_file():
        try:
            data = json.loads(out.read_text())
        except ValueError as exc:
            rec["json_error"] = str(exc)
    if rc is None:
        rec.update(status="failed", reason=f"timed out after {timeout:g} s")
    elif rc != 0:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        rec.update(status="failed", reason=f"exit {rc}: {last[-1] if last else 'no message'}")
    elif data is None:
        rec.update(status="failed", reason=f"exit 0 but no readable JSON at {out}")
    else:
        rec["status"] = "ok"
    if rec["status"] == "failed":
        rec["stderr_tail"] = stderr[-3000:]
    rec["headline"] = headline(b.name, data)
    rec["result"] = data
    return rec


def markdown(records: list[dict], meta: dict) -> str:
    m = meta["machine_start"]
    lines = [f"Benchmarks ({'quick' if meta['quick'] else 'full'}), {m['time']}: {m['nproc']} CPUs, {m['cpu']}, "
             f"load average {m['loadavg']} -> {meta['machine_end']['loadavg']}", "",
             "| bench | status | s | load 1-min before -> after | headline |", "|---|---|---:|---|---|"]
    for r in records:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason', '')}"
        load = f"{(r['load_before'] or ['?'])[0]} -> {(r['load_after'] or ['?'])[0]}"
        text = (r.get("headline") or "").replace("|", "/")
        lines.append(f"| {r['name']} | {status.replace('|', '/')} | {r['seconds']:.0f} | {load} | {text} |")
    lines += ["", "Commands:", ""] + [f"- {r['name']}: `{r['command']}`" for r in records]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, benches: tuple[Bench, ...] = BENCHES) -> int:
    names = [b.name for b in benches]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small settings: a smoke run of every bench")
    p.add_argument("--only", nargs="+", choices=names, help="run only these benches")
    p.add_argument("--skip", nargs="+", choices=names, default=[], help="leave these out")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per bench before it is stopped (default 1800, quick 600)")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="where every JSON, all.json and all.md go")
    p.add_argument("--python", default=sys.executable, help="interpreter the benches run with")
    args = p.parse_args(argv)
    timeout = args.timeout or (600.0 if args.quick else 1800.0)
    chosen = [b for b in benches if (not args.only or b.name in args.only) and b.name not in args.skip]
    meta = {"quick": args.quick, "machine_start": machine(), "timeout_s": timeout}
    records = []
    for b in chosen:
        print(f"[{time.strftime('%H:%M:%S')}] {b.name}: {b.what} ...", flush=True)
        rec = run_bench(b, args.quick, args.out_dir, timeout, args.python)
        records.append(rec)
        print(f"    {rec['status']} in {rec['seconds']:.0f} s{': ' + rec['reason'] if rec.get('reason') else ''}"
              f"{'  ' + rec['headline'] if rec.get('headline') else ''}", flush=True)
    meta["machine_end"] = machine()
    all_json = write_json(args.out_dir / "all.json", {**meta, "benches": records})
    table = markdown(records, meta)
    (args.out_dir / "all.md").write_text(table)
    print("\n" + table)
    print(f"wrote {all_json} and {args.out_dir / 'all.md'}")
    failed = [r["name"] for r in records if r["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
