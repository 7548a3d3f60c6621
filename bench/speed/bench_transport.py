"""How many concurrent 16 kHz streams (100 ms chunks) one worker process ingests and windows on
loopback with zero loss, with the no-op model stage (1 s windows, 1 s hop).

Three kinds of process, so that the figure is the WORKER's:

* the worker (`edge_coat.worker.service.Worker` + `NoopStage`) in its own process; after a
  ``--warmup`` (streams join, buffers warm up) it measures its own CPU time (getrusage, and per
  thread from /proc: CPU, system share, minor page faults) until every stream is acknowledged, and
  the latency from capture (the moment a window's last chunk was complete) to window-ready;
* ``--clients`` load-generator processes, each one raw DEALER speaking the wire format (Hello,
  heartbeats, audio, reading acks) with pre-built payloads, so that they cost far less than the
  full `Sender` (no replay buffer: any loss shows up directly). Their CPU is reported apart;
* this process, which only orchestrates.

``--baseline-code DIR`` runs every level with the worker imported from DIR (e.g. a ``git worktree``
of an older commit) and from this checkout, interleaved, and reports the CPU ratio of the two
measured in the same run; ``--repeat N`` gives medians and [min, max] spreads. A level "keeps up"
when it is zero-loss, the load generators never fell a tick behind, and the capture-to-window p99
stays under ``--max-p99-ms``. ``--profile DIR`` samples each worker with py-spy (bench/PROFILE.md).

    python -m bench.speed.bench_transport --streams 250 1000 2000 --seconds 6
    git worktree add --detach /tmp/before <commit> && \\
        python -m bench.speed.bench_transport --streams 250 1000 2000 --repeat 2 --baseline-code /tmp/before
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, REPO

CHUNK = 1600  # samples: 100 ms at 16 kHz
TICK = CHUNK / 16000
HEARTBEAT_S = 1.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _faults() -> int:
    """Minor page faults of this process so far (fresh memory touched: window arrays, buffers)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _threads() -> dict[str, list[float]]:
    """[CPU s, minor page faults, system-mode CPU s] per thread of this process, by thread name
    (Python threads by their name, native ones such as ZeroMQ's I/O thread by their OS name); Linux only."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, list[float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm, rest = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        # fields after the name: state=0, minflt=7, utime=11, stime=12
        name = names.get(int(tid), comm)
        cur = out.setdefault(name, [0.0, 0, 0.0])
        cur[0] += (int(rest[11]) + int(rest[12])) / tick
        cur[1] += int(rest[7])
        cur[2] += int(rest[12]) / tick
    return out


# ---- the worker process ---------------------------------------------------------------------------
def _tap_stages(worker, measure_from: list[float], drained_at: list[float]) -> dict[str, list[float]]:
    """Where a chunk's latency goes, measured per batch (two clock reads per batch, not per chunk):
    wraps the receiver's hand-over to the ingest queue and the windowing thread's drain.

    * ``capture_to_queued``: capture complete (the chunk's capture time + its length) -> in the
      ingest queue, for the first and the last chunk of each socket read: load generator, ZeroMQ,
      the socket thread's pacing and reads;
    * ``queued_to_drained``: in the ingest queue -> taken by the windowing thread, for the oldest
      chunk of each drain (`drained_to_ready`, per window, is filled by the caller's ``on_window``:
      the windowing work on the batch before the window was handed on).
    Wall clock (``time.time``) like the capture timestamps. The wrappers reach into the receiver's
    private methods: a bench instrument, not an API.
    """
    rec = worker.receiver
    if not hasattr(rec, "_enqueue"):  # a baseline worker from before batched hand-over: no stage figures
        return {"capture_to_queued": [], "queued_to_drained": [], "drain_chunks": []}
    enq: collections.deque[tuple[float, int]] = collections.deque()  # (time queued, chunks queued so far)
    counts = {"queued": 0, "drained": 0}
    out: dict[str, list[float]] = {"capture_to_queued": [], "queued_to_drained": [], "drain_chunks": []}
    inner_enqueue, inner_drain = rec._enqueue, rec.drain

    def enqueue(batch):
        if batch:
            now = time.time()
            if now >= measure_from[0]:
                for a in (batch[0], batch[-1]):
                    if isinstance(a, tuple):  # WireAudio: (.., ts at [4], samples at [5], ..)
                        out["capture_to_queued"].append(now - a[4] - len(a[5]) / 16000)
            counts["queued"] += len(batch)
            enq.append((now, counts["queued"]))
        inner_enqueue(batch)

    def drain(timeout):
        chunks = inner_drain(timeout)
        now = time.time()
        if chunks:
            first = counts["drained"]  # index of the oldest chunk drained
            while enq and enq[0][1] <= first:  # batches wholly drained before
                enq.popleft()
            if enq and now >= measure_from[0]:
                out["queued_to_drained"].append(now - enq[0][0])
                out["drain_chunks"].append(len(chunks))
            counts["drained"] += len(chunks)
        drained_at[0] = now  # read by the caller's on_window (same thread)
        return chunks

    rec._enqueue, rec.drain = enqueue, drain
    return out


def _stage_summary(stages: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """p50/p99 (ms; chunks for drain_chunks) of each stage's delays."""
    out = {}
    for k, v in stages.items():
        a = np.asarray(v, dtype=np.float64) * (1 if k == "drain_chunks" else 1000)
        out[k] = {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "n": len(a)} if len(a) else {}
    return out


def _worker_proc(code: str, conn, profile: str | None = None, seconds: float = 0.0,
                 switch_interval: float | None = None, profile_gil: bool = False) -> None:
    """Runs one worker whose package is imported from `code`; driven over `conn`. With `profile`,
    py-spy samples this process while the load runs and writes collapsed stacks there. With
    `switch_interval`, the interpreter's GIL switch interval is forced to it (s), for both codes."""
    sys.path.insert(0, code)
    from edge_coat.worker.config import WorkerConfig
    from edge_coat.worker.service import Worker
    from edge_coat.worker.stage import NoopStage

    latencies: list[float] = []
    measure_from = [float("inf")]

    drained_at = [0.0]  # wall time the windowing thread took its current batch (set by _tap_stages)
    ready_wait: list[float] = []

    def on_window(w, _t):
        if w.end_ts >= measure_from[0]:
            now = time.time()
            latencies.append(now - w.end_ts)
            ready_wait.append(now - drained_at[0])

    cfg = WorkerConfig(
        receiver={"bind": "tcp://127.0.0.1:0", "link": {"heartbeat_s": HEARTBEAT_S}},
        default_stream={"window_s": 1.0, "hop_s": 1.0, "tasks": {"anomaly": {"min_rms_dbfs": -200}}},
        batch={"max_batch": 64, "max_wait_s": 0.05},
    )
    worker = Worker(cfg, NoopStage(), on_window=on_window)
    stages = _tap_stages(worker, measure_from, drained_at)
    worker.start()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    conn.send(worker.endpoint)
    start_at, measure_from[0] = conn.recv()
    while time.time() < measure_from[0]:  # warm-up: streams join, buffers are first touched
        time.sleep(0.002)
    spy = None
    if profile:
        import subprocess

        spy = subprocess.Popen(["py-spy", "record", "--pid", str(os.getpid()), "--format", "raw", "--threads",
                                "-d", str(max(1, int(seconds))), "-o", profile, *(["--gil"] if profile_gil else [])],
                               stdout=subprocess.DEVNULL)
    cpu0, t0, f0, th0 = _cpu_s(), time.monotonic(), _faults(), _threads()
    conn.recv()  # "stop": every generator saw its streams acknowledged (or gave up)
    cpu1, t1, f1, th1 = _cpu_s(), time.monotonic(), _faults(), _threads()
    threads = {k: [a - b for a, b in zip(v, th0.get(k, [0, 0, 0]))] for k, v in th1.items()}
    stats = worker.stats()
    worker.close()
    if spy is not None:
        spy.wait(60)
    stages["drained_to_ready"] = ready_wait
    conn.send({"stages": _stage_summary(stages), "switch_interval_s": sys.getswitchinterval(), "cpu_s": cpu1 - cpu0, "wall_s": t1 - t0, "faults": f1 - f0, "threads": threads, "latencies": latencies, "stats": stats})


# ---- the load generators ------------------------------------------------------------------------
def _loadgen_proc(endpoint: str, ids: list[str], seconds: float, start_at: float, measure_from: float, out) -> None:
    """One raw DEALER client: Hello, then every stream's 100 ms chunk each tick, heartbeats, acks."""
    import zmq

    from edge_coat.v1 import audio_pb2 as pb

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.sndhwm = 0  # never drop on our side: a slow worker shows up as latency, not as our loss
    sock.rcvhwm = 0
    sock.connect(endpoint)
    epoch = time.time_ns()
    hello = pb.Frame(protocol_version=1, hello=pb.Hello(client_id=f"loadgen-{os.getpid()}",
                                                        sender_epoch=epoch)).SerializeToString()
    heartbeat = pb.Frame(protocol_version=1, heartbeat=pb.Heartbeat()).SerializeToString()
    x = np.random.default_rng(0).standard_normal(CHUNK) * 0.1  # (CHUNK,) float64
    payload = np.clip(np.rint(x * 32768), -32768, 32767).astype("<i2").tobytes()
    frames = {sid: pb.Frame(protocol_version=1, audio=pb.AudioHeader(
        stream_id=sid, sender_epoch=epoch, sample_rate=16000, channels=1,
        sample_format=pb.SAMPLE_FORMAT_S16LE, num_frames=CHUNK)) for sid in ids}
    n_chunks = round(seconds / TICK)
    acked = dict.fromkeys(ids, -1)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    state = {"welcomed": False, "last_tx": 0.0}

    def service(until: float) -> None:
        """Answer the worker (welcome, acks) and heartbeat until wall time `until`."""
        while True:
            now = time.time()
            if now - state["last_tx"] >= HEARTBEAT_S / 2:
                sock.send(heartbeat if state["welcomed"] else hello)
                state["last_tx"] = now
            if now >= until:
                return
            if not poller.poll(max(1, int(1000 * min(until - now, HEARTBEAT_S / 2)))):
                continue
            while True:
                try:
                    msg = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                f = pb.Frame.FromString(msg)
                if f.HasField("welcome"):
                    state["welcomed"] = True
                elif f.HasField("ack"):
                    for a in f.ack.streams:
                        if a.sequence > acked.get(a.stream_id, -2):
                            acked[a.stream_id] = a.sequence

    deadline = time.time() + 30
    while not state["welcomed"] and time.time() < deadline:
        service(time.time() + 0.05)
    service(start_at)
    cpu0 = None
    late = 0
    for k in range(n_chunks):
        due = start_at + (k + 1) * TICK  # chunk k is complete (captured) at this time
        service(due)
        if cpu0 is None and due > measure_from:
            cpu0 = _cpu_s()
        if time.time() > due + TICK:
            late += 1
        for sid in ids:
            f = frames[sid]
            h = f.audio
            h.sequence = k
            h.start_sample = k * CHUNK
            h.capture_ts = due - TICK
            h.end_of_stream = k == n_chunks - 1
            sock.send(f.SerializeToString(), zmq.SNDMORE)
            sock.send(payload)
    cpu1 = _cpu_s()
    last = n_chunks - 1
    deadline = time.time() + 60 + seconds
    while time.time() < deadline and any(v != last for v in acked.values()):
        service(time.time() + 0.05)
    out.put({"acked": all(v == last for v in acked.values()), "late_ticks": late,
             "welcomed": state["welcomed"], "send_cpu_s": cpu1 - cpu0, "cpu_s": _cpu_s() - cpu0})
    sock.close(linger=0)
    ctx.term()


# ---- one measurement ------------------------------------------------------------------------------
def run_level(n_streams: int, seconds: float, warmup: float, n_clients: int, code: str,
              profile: str | None = None, switch_interval: float | None = None, profile_gil: bool = False) -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    wp = ctx.Process(target=_worker_proc, args=(code, child, profile, seconds, switch_interval, profile_gil))
    wp.start()
    if not parent.poll(60):
        raise RuntimeError("the worker process did not report its endpoint within 60 s")
    endpoint = parent.recv()
    out = ctx.Queue()
    ids = [f"s{i:05d}" for i in range(n_streams)]
    start_at = time.time() + 3.0 + 0.001 * n_streams  # generators import and connect first
    measure_from = start_at + warmup
    gens = [ctx.Process(target=_loadgen_proc,
                        args=(endpoint, ids[i::n_clients], warmup + seconds, start_at, measure_from, out))
            for i in range(n_clients)]
    for p in gens:
        p.start()
    parent.send((start_at, measure_from))
    reports = [out.get(timeout=warmup + seconds + 180) for _ in gens]
    parent.send("stop")
    res = parent.recv()
    for p in (*gens, wp):
        p.join(10)
    stats = res["stats"]
    n_chunks = round((warmup + seconds) / TICK)
    expected_s = n_chunks * TICK
    per = stats["streams"]
    lost_s = sum(max(0.0, expected_s - per.get(sid, {}).get("audio_s_in", 0.0)) for sid in ids)
    gaps_s = sum(s["gap_s"] for s in per.values())
    drops = stats["receiver"]["messages"].get("queue_dropped", 0) + stats["batch_dropped"]
    windows = sum(s["windows_processed"] for s in per.values())
    lat = np.array(res["latencies"]) * 1000  # (n_windows,) ms
    stream_s = n_streams * seconds  # audio after the warm-up: what the CPU window covers
    return {
        "code": code,
        "streams": n_streams,
        "seconds": seconds,
        "warmup_s": warmup,
        "zero_loss": bool(lost_s == 0 and gaps_s == 0 and drops == 0 and all(r["acked"] for r in reports)),
        "lost_s": lost_s,
        "gap_s": gaps_s,
        "queue_drops": drops,
        "late_ticks": sum(r["late_ticks"] for r in reports),
        "windows": windows,
        "expected_windows": n_streams * int(expected_s),
        "switch_interval_s": res.get("switch_interval_s"),
        "worker_cpu_s": res["cpu_s"],
        "wall_s": res["wall_s"],
        "worker_cpu_ms_per_stream_s": 1000 * res["cpu_s"] / stream_s,
        "worker_cores": res["cpu_s"] / res["wall_s"],
        "worker_page_faults_per_chunk": res["faults"] / (stream_s / TICK),
        "worker_threads": {k: {"cpu_ms_per_stream_s": 1000 * v[0] / stream_s, "faults_per_chunk": v[1] / (stream_s / TICK),
                               "system_cpu_share": v[2] / v[0] if v[0] else 0.0}
                           for k, v in sorted(res["threads"].items()) if v[0] > 0 or v[1] > 0},
        "loadgen_cpu_ms_per_stream_s": 1000 * sum(r["send_cpu_s"] for r in reports) / stream_s,
        "worker_totals": stats["totals"],
        "receiver": stats["receiver"],
        "stages_ms": res.get("stages"),
        "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
    }


def _median_row(runs: list[dict]) -> dict:
    """One row from repeated runs of a level: medians of the figures, their [min, max] spread,
    zero loss only if every run had it, keeping up if most runs did."""
    row = dict(runs[0])
    for k in ("worker_cpu_ms_per_stream_s", "worker_cores", "loadgen_cpu_ms_per_stream_s", "latency_p50_ms",
              "latency_p99_ms", "worker_page_faults_per_chunk", "late_ticks"):
        vals = [r[k] for r in runs if r[k] is not None]
        row[k] = float(np.median(vals)) if vals else None
        row[k + "_spread"] = [min(vals), max(vals)] if vals else None
    row["zero_loss"] = all(r["zero_loss"] for r in runs)
    row["keeps_up"] = sum(r["keeps_up"] for r in runs) * 2 > len(runs)
    row["runs"] = len(runs)
    return row


def _print(rows: list[dict]) -> None:
    head = (f"{'code':>8} {'streams':>7} {'0-loss':>6} {'windows':>8} {'worker ms/str-s':>15} {'cores':>5} "
            f"{'ratio':>6} {'gen ms/str-s':>12} {'p50 ms':>7} {'p99 ms':>8} {'late':>4} {'keeps up':>8}")
    print(head)
    for r in rows:
        ratio = r.get("cpu_ratio_vs_baseline")
        print(f"{r['label']:>8} {r['streams']:>7} {str(r['zero_loss']):>6} {r['windows']:>8} "
              f"{r['worker_cpu_ms_per_stream_s']:>15.3f} {r['worker_cores']:>5.2f} "
              f"{ratio if ratio is not None else float('nan'):>6.2f} {r['loadgen_cpu_ms_per_stream_s']:>12.3f} "
              f"{r['latency_p50_ms'] or 0:>7.1f} {r['latency_p99_ms'] or 0:>8.1f} {r['late_ticks']:>4.0f} "
              f"{str(r['keeps_up']):>8}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[250, 1000, 2000])
    ap.add_argument("--seconds", type=float, default=6.0, help="audio per stream per level, measured")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="audio per stream sent before the measurement starts (streams join, buffers warm up)")
    ap.add_argument("--clients", type=int, default=2, help="load-generator processes (one DEALER each)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per level (medians reported)")
    ap.add_argument("--baseline-code", type=Path, default=None,
                    help="a checkout (e.g. git worktree) whose worker is measured in the same run as the baseline")
    ap.add_argument("--max-p99-ms", type=float, default=1000.0,
                    help="a level 'keeps up' when zero-loss, generators on time, and p99 below this")
    ap.add_argument("--profile", type=Path, default=None,
                    help="folder: sample each worker with py-spy (pip install py-spy) into <label>-<streams>.txt "
                    "(collapsed stacks); CPU figures then include the sampling overhead")
    ap.add_argument("--profile-gil", action="store_true",
                    help="with --profile: sample only the thread holding the GIL (py-spy --gil): where the "
                    "interpreter's time goes, without the threads waiting for it")
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="force the worker process's GIL switch interval (s; sys.setswitchinterval) after it started, "
                    "for every code measured (default: whatever the worker sets, Python's own is 0.005)")
    ap.add_argument("--json", type=Path, default=RESULTS / "bench_transport.json")
    args = ap.parse_args()
    codes = [("current", str(REPO))]
    if args.baseline_code is not None:
        codes.insert(0, ("baseline", str(args.baseline_code.resolve())))
    runs = []
    for rep in range(args.repeat):
        for n in args.streams:
            for label, code in codes:  # interleaved, so that the machine's load hits both alike
                prof = None
                if args.profile is not None:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    prof = str(args.profile / f"{label}-{n}-{rep}.txt")
                r = run_level(n, args.seconds, args.warmup, args.clients, code, prof, args.switch_interval,
                              args.profile_gil)
                r["label"], r["repeat"] = label, rep
                # zero loss alone can hide a worker that falls behind and catches up later
                r["keeps_up"] = bool(r["zero_loss"] and r["latency_p99_ms"] is not None
                                     and r["latency_p99_ms"] < args.max_p99_ms and r["late_ticks"] == 0)
                runs.append(r)
                print(f"  {label} {n} streams (run {rep + 1}/{args.repeat}): worker "
                      f"{r['worker_cpu_ms_per_stream_s']:.3f} ms/stream-s, p99 {r['latency_p99_ms'] or 0:.0f} ms, "
                      f"zero loss {r['zero_loss']}, keeps up {r['keeps_up']}", flush=True)
                if r.get("stages_ms"):
                    print("    latency by stage, p50/p99: " + ", ".join(
                        f"{k} {v['p50']:.0f}/{v['p99']:.0f}" for k, v in r["stages_ms"].items() if v), flush=True)
    rows = [_median_row([r for r in runs if r["label"] == label and r["streams"] == n])
            for n in args.streams for label, _ in codes]
    for r in rows:
        base = next((b for b in rows if b["label"] == "baseline" and b["streams"] == r["streams"]), None)
        r["cpu_ratio_vs_baseline"] = (base["worker_cpu_ms_per_stream_s"] / r["worker_cpu_ms_per_stream_s"]
                                      if base else None)
    _print(rows)
    summary = {}
    for label, _ in codes:
        mine = [r for r in rows if r["label"] == label]
        summary[label] = {
            "max_zero_loss_streams": max((r["streams"] for r in mine if r["zero_loss"]), default=0),
            "max_real_time_streams": max((r["streams"] for r in mine if r["keeps_up"]), default=0),
        }
        print(f"{label}: largest stream count with zero loss in every run {summary[label]['max_zero_loss_streams']}; "
              f"that also kept up in real time in most runs (p99 < {args.max_p99_ms:.0f} ms, generators on time): "
              f"{summary[label]['max_real_time_streams']} (target 2000)")
    print(f"medians of {args.repeat} run(s), [min-max] spread in the JSON; ratio = baseline worker CPU per "
          f"stream-second / this row's (higher is better); machine: {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} (other users' processes included)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "runs": runs, "summary": summary, "cpus": os.cpu_count(),
                                     "loadavg": os.getloadavg()}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
