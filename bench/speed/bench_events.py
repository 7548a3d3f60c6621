"""Event service benchmark: log write rate, and fan-out latency with many subscribers, measured fairly.

What it runs (everything on loopback, every phase time-bounded):

* ``edge-coat serve`` as its own process over a fresh log file (optionally twice: ``--before REPO`` runs
  the same scenarios first against the server code of another checkout, e.g. a ``git worktree`` of an
  older commit, so before/after come from the same run on the same machine);
* this process writes events into the log at a fixed rate, as the worker would (no notify: the server
  finds them by polling, as in a split deployment);
* the subscribers live in ``--client-procs`` separate client processes (each holds a share of the
  subscriptions on its own channel), so the server is not measured through one client's GIL. Clients
  decode with a minimal message type (event id and created_ts only; upb skips the rest in C), check that
  ids arrive contiguous, and record latencies of about 100 sampled subscriptions.

Latency = client receive time - the time the log stored the event (same host clock). The 1-subscriber
run on the same server is the baseline. Server CPU is read from /proc for the server process alone
(all its threads), from the first write to the end of the drain; client CPU is reported separately.

    python -m bench.speed.bench_events [--subscribers 1000] [--rate 1000] [--seconds 5] [--client-procs 4]
                                 [--before /tmp/events-before] [--profile]

Prints a table and writes bench/results/bench_events.json (``--profile``: py-spy samples of the server
during the fan-out run, summarised into bench/results/profile_events_<label>.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import REPO
from edge_coat.events.log import EventLog
from edge_coat.messages import EventRecord

SUBSCRIBE = "/edge_coat.v1.EventService/Subscribe"
TICKS = os.sysconf("SC_CLK_TCK")


def make_record(i: int) -> EventRecord:
    return EventRecord(stream_id=f"press-{i % 16}", kind="anomaly", phase="start", episode_id=f"e{i}",
                       label="abnormal", score=0.8, window_start_ts=time.time(), window_end_ts=time.time() + 2,
                       text=f"press-{i % 16}: abnormal sound (score 0.80); pitch 120 Hz, -20 dBFS",
                       evidence={"scores": {"score": 0.8, "distance": 3.2}, "readings": {"pitch_hz": 120.0,
                                 "loudness_dbfs": -20.0}, "tags": [["Engine", 0.7], ["Hiss", 0.2]],
                                 "gap_seconds": 0.0, "model": {"name": "coat-tiny", "version": "0.1"}})


def write_rate(path: Path, seconds: float, batch: int) -> float:
    log = EventLog(path)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        log.append_many([make_record(n + i) for i in range(batch)])
        n += batch
    rate = n / (time.perf_counter() - t0)
    log.close()
    return rate


# ---------------------------------------------------------------------------------------------- client process
def lite_response_class():
    """A SubscribeResponse look-alike that decodes only what the bench needs (ids, created_ts, cursor).

    Same field numbers as edge_coat.v1.SubscribeResponse/Event; upb keeps the other fields as unknown
    bytes without building them, so the client spends little CPU per event.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="bench_events_lite.proto", package="bench_lite", syntax="proto3")
    ev = fdp.message_type.add(name="EventLite")
    ev.field.add(name="id", number=1, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    ev.field.add(name="created_ts", number=10, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    resp = fdp.message_type.add(name="ResponseLite")
    resp.field.add(name="events", number=1, type=F.TYPE_MESSAGE, type_name=".bench_lite.EventLite",
                   label=F.LABEL_REPEATED)
    resp.field.add(name="cursor", number=2, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    resp.field.add(name="heartbeat", number=4, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bench_lite.ResponseLite"))


def client_process(spec: dict) -> None:
    """Hold ``spec['n']`` subscriptions from cursor ``start`` until each has seen id ``end`` (or stdin says stop).

    Prints one JSON line: counts, completeness, contiguity breaks, errors, CPU; sampled latencies go to
    ``spec['lat_path']`` (.npy, seconds).
    """
    import grpc

    from edge_coat.v1 import events_pb2 as pb

    lite = lite_response_class()
    n, start, end, sample = spec["n"], spec["start"], spec["end"], set(spec["sample"])
    counts, breaks, errors, messages = [0] * n, [0], collections.Counter(), [0]
    lat: list[float] = []
    done = [False] * n
    cpu_ready = [0.0]

    async def main():
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{spec['port']}") for _ in range(spec["channels"])]
        for ch in channels:
            await asyncio.wait_for(ch.channel_ready(), 30)
        request = pb.SubscribeRequest(from_cursor=start)

        async def read(k: int) -> None:
            call = channels[k % len(channels)].unary_stream(
                SUBSCRIBE, request_serializer=pb.SubscribeRequest.SerializeToString,
                response_deserializer=lite.FromString)(request)
            last, sampled = start, k in sample
            try:
                async for resp in call:
                    events = resp.events
                    messages[0] += 1
                    if not events:
                        continue
                    if events[0].id != last + 1:
                        breaks[0] += 1
                    counts[k] += len(events)
                    last = events[-1].id
                    if sampled:
                        now = time.time()
                        lat.extend(now - e.created_ts for e in events)
                    if last >= end:
                        done[k] = True
                        call.cancel()
                        return
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1

        tasks = [asyncio.create_task(read(k)) for k in range(n)]
        print(json.dumps({"ready": True}), flush=True)
        cpu_ready[0] = time.process_time()  # CPU of the subscriptions only, not of the imports
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        # a daemon thread: asyncio.run would wait forever on an executor thread blocked in readline
        threading.Thread(target=lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(stop.set)),
                         daemon=True).start()
        await asyncio.wait([asyncio.ensure_future(asyncio.gather(*tasks)), asyncio.ensure_future(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in channels:
            await ch.close()

    asyncio.run(main())
    np.save(spec["lat_path"], np.asarray(lat, dtype=np.float64))
    print(json.dumps({"deliveries": sum(counts), "complete": sum(done), "breaks": breaks[0], "messages": messages[0],
                      "errors": dict(errors), "cpu_s": time.process_time() - cpu_ready[0]}), flush=True)
    os._exit(0)  # skip interpreter teardown of grpc's threads


# ---------------------------------------------------------------------------------------------- server side
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_serve(repo: Path, db: Path, port: int, queue_events: int, poll_s: float) -> subprocess.Popen:
    cfg = Path(tempfile.mkdtemp()) / "site.json"
    cfg.write_text(json.dumps({"events": {"db_path": str(db), "listen": f"127.0.0.1:{port}", "insecure": True,
                                          "poll_interval_s": poll_s, "heartbeat_s": 5.0,
                                          "queue_events": queue_events},
                               # no /metrics: the default port may be taken, and it would cost server CPU
                               "metrics": {"enabled": False}}))
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.Popen([sys.executable, "-m", "edge_coat", "serve", "--config", str(cfg)], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        raise RuntimeError(f"serve ({repo}) did not start: {line!r}")
    return proc


def server_subscribers(port: int) -> int:
    import grpc

    from edge_coat.v1 import events_pb2 as pb
    from edge_coat.v1 import events_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return pb_grpc.EventServiceStub(ch).GetStatus(pb.GetStatusRequest(), timeout=10).subscribers


def fanout(serve: subprocess.Popen, db: Path, port: int, subscribers: int, rate: float, seconds: float,
           procs: int, channels: int, drain_s: float, profile_to: Path | None = None, native: bool = False) -> dict:
    """Publish ``rate`` events/s for ``seconds``; every subscriber must see all of them."""
    total = int(rate * seconds)
    log = EventLog(db)
    start = log.head()
    procs = max(1, min(procs, subscribers))
    shares = [subscribers // procs + (i < subscribers % procs) for i in range(procs)]
    every = max(1, subscribers // 100)  # latencies of ~100 subscriptions (all are checked for loss)
    tmp = Path(tempfile.mkdtemp())
    clients, first = [], 0
    for i, n in enumerate(shares):
        spec = {"port": port, "n": n, "start": start, "end": start + total, "channels": max(1, min(channels, n)),
                "sample": [k for k in range(n) if (first + k) % every == 0], "lat_path": str(tmp / f"lat{i}.npy")}
        first += n
        clients.append(subprocess.Popen([sys.executable, "-m", "bench.speed.bench_events", "--client", json.dumps(spec)], cwd=REPO,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for c in clients:
        line = c.stdout.readline()
        if '"ready"' not in line:
            raise RuntimeError(f"bench client did not start: {line!r}")
    deadline = time.monotonic() + 30 + subscribers / 20
    while server_subscribers(port) < subscribers:  # every subscription is open on the server
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {server_subscribers(port)} of {subscribers} subscriptions opened")
        time.sleep(0.2)

    spy = None
    if profile_to is not None:
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(serve.pid), "--rate", "200",
                                *(["--native"] if native else ["--nonblocking", "--gil"]),
                                "--format", "raw", "--duration", str(int(seconds + 2)), "-o", str(profile_to)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu0, t0 = proc_cpu_s(serve.pid), time.perf_counter()
    tick, batch = 0.01, max(1, int(rate * 0.01))
    for j in range(0, total, batch):
        log.append_many([make_record(j + i) for i in range(min(batch, total - j))])
        delay = t0 + (j // batch + 1) * tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    t_pub = time.perf_counter() - t0
    end_by = time.monotonic() + drain_s
    for c in clients:  # each exits when all its subscriptions have seen the last event
        try:
            c.wait(max(0.1, end_by - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    t_done = time.perf_counter() - t0
    cpu = proc_cpu_s(serve.pid) - cpu0
    reports = []
    for c in clients:
        out, _ = c.communicate("stop\n", timeout=60)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    if spy is not None:
        spy.wait(seconds + 60)
    log.close()
    lat = np.concatenate([np.load(tmp / f"lat{i}.npy") for i in range(procs)]) * 1000.0
    shutil.rmtree(tmp, ignore_errors=True)
    deliveries = sum(r["deliveries"] for r in reports)
    errors = collections.Counter()
    for r in reports:
        errors.update(r["errors"])
    pct = (lambda q: float(np.percentile(lat, q))) if len(lat) else (lambda q: None)
    return {"subscribers": subscribers, "events": total, "publish_rate": total / t_pub,
            "complete_subscribers": sum(r["complete"] for r in reports), "deliveries": deliveries,
            "expected_deliveries": total * subscribers, "contiguity_breaks": sum(r["breaks"] for r in reports),
            "errors": dict(errors), "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100),
            "wall_s": t_done, "deliveries_per_s": deliveries / t_done,
            "server_cpu_s": cpu, "server_cpu_util": cpu / t_done,
            "server_cpu_us_per_delivery": 1e6 * cpu / deliveries if deliveries else None,
            "client_cpu_s": sum(r["cpu_s"] for r in reports), "client_procs": procs,
            "messages": sum(r["messages"] for r in reports),
            "events_per_message": deliveries / max(1, sum(r["messages"] for r in reports))}


def summarise_profile(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    self_n, incl_n, total = collections.Counter(), collections.Counter(), 0
    callers: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        frames = [f.strip() for f in stack.split(";")]
        total += int(n)
        self_n[frames[-1]] += int(n)
        for f in set(frames):
            incl_n[f] += int(n)
        # nearest Python-level caller of a native leaf (libc/cygrpc frames have no names without symbols)
        named = [f for f in frames[:-1] if ".py:" in f or ".c:" in f]
        callers[frames[-1]][named[-1] if named else "?"] += int(n)
    lines = [f"py-spy samples of the server's Python thread holding the GIL: {total}", "", "self time:"]
    for f, n in self_n.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {f}")
        if ".py:" not in f:
            lines += [f"           <- {100 * m / total:5.1f}% {c}" for c, m in callers[f].most_common(2)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl_n.most_common(top)]
    return "\n".join(lines) + "\n"


def run_server(label: str, repo: Path, args, tmp: Path) -> dict:
    db, port = tmp / f"events-{label}.db", free_port()
    EventLog(db).close()
    proc = start_serve(repo, db, port, args.queue_events, args.poll_interval)
    out: dict = {"repo": str(repo)}
    try:
        out["baseline_1_subscriber"] = fanout(proc, db, port, 1, args.rate, min(args.seconds, 3.0), 1, 1,
                                              args.drain)
        prof = tmp / f"profile_events_{label}.raw" if args.profile else None
        out["fanout"] = fanout(proc, db, port, args.subscribers, args.rate, args.seconds, args.client_procs,
                               args.channels, args.drain, prof, args.native)
        if prof is not None and prof.exists():
            summary = REPO / "bench" / "results" / f"profile_events_{label}.txt"
            summary.write_text(summarise_profile(prof))
            out["profile"] = str(summary.relative_to(REPO))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def fmt(v, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else format("-", spec.split(".")[0].rstrip("f"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second written to the log")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long events are written")
    ap.add_argument("--client-procs", type=int, default=4, help="client processes sharing the subscriptions")
    ap.add_argument("--channels", type=int, default=1, help="gRPC channels (connections) per client process")
    ap.add_argument("--drain", type=float, default=60.0, help="most seconds to wait for delivery after writing")
    ap.add_argument("--queue-events", type=int, default=20000, help="server ring size (events.queue_events)")
    ap.add_argument("--poll-interval", type=float, default=0.005, help="server's events.poll_interval_s")
    ap.add_argument("--repeat", type=int, default=1, help="run the (before and) after server this many times")
    ap.add_argument("--before", type=Path, help="checkout whose server is measured first (e.g. a git worktree)")
    ap.add_argument("--profile", action="store_true", help="py-spy the server during each fan-out run")
    ap.add_argument("--native", action="store_true", help="with --profile: include Cython/C frames (pauses the server)")
    ap.add_argument("--keep-raw", action="store_true", help="keep the temp dir (py-spy raw stacks) and print it")
    ap.add_argument("--skip-write-rate", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "bench_events.json"))
    ap.add_argument("--client", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_process(json.loads(args.client))
        return 0
    if args.profile and shutil.which("py-spy") is None:
        ap.error("--profile needs py-spy (pip install py-spy)")
    tmp = Path(tempfile.mkdtemp())
    results: dict = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                if k != "client"}}
    if not args.skip_write_rate:
        results["write_rate_single"] = write_rate(tmp / "w1.db", 2.0, 1)
        results["write_rate_batch100"] = write_rate(tmp / "w2.db", 2.0, 100)
    servers = ([("before", args.before.resolve())] if args.before else []) + [("after", REPO)]
    results["runs"] = []
    for i in range(args.repeat):  # before and after alternate, so slow spells of the machine hit both
        results["runs"].append({label: run_server(label, repo, args, tmp) for label, repo in servers})
    if not args.keep_raw:
        shutil.rmtree(tmp, ignore_errors=True)
    import grpc

    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "grpc": grpc.__version__,
                          "loadavg_at_end": os.getloadavg()}
    if "write_rate_single" in results:
        print(f"log writes: {results['write_rate_single']:.0f} events/s (1 per transaction), "
              f"{results['write_rate_batch100']:.0f} events/s (100 per transaction)")
    print(f"{'run':>3} {'server':>7} {'subs':>5} {'events':>6} {'complete':>8} {'lost':>6} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'deliv/s':>8} {'ev/msg':>6} {'srv cpu s':>9} {'us/deliv':>8} "
          f"{'cli cpu s':>9}")
    for i, run in enumerate(results["runs"]):
        for label, _ in servers:
            for r in (run[label]["baseline_1_subscriber"], run[label]["fanout"]):
                print(f"{i:>3} {label:>7} {r['subscribers']:>5} {r['events']:>6} {r['complete_subscribers']:>8} "
                      f"{r['expected_deliveries'] - r['deliveries']:>6} {fmt(r['p50_ms'], '8.1f')} "
                      f"{fmt(r['p99_ms'], '8.1f')} {fmt(r['max_ms'], '8.1f')} {r['deliveries_per_s']:>8.0f} "
                      f"{r['events_per_message']:>6.1f} {r['server_cpu_s']:>9.2f} "
                      f"{fmt(r['server_cpu_us_per_delivery'], '8.2f')} {r['client_cpu_s']:>9.2f}")
    if args.before:
        keys = ("p50_ms", "p99_ms", "server_cpu_us_per_delivery")
        per_run = [{k: run["before"]["fanout"][k] / run["after"]["fanout"][k]
                    for k in keys if run["before"]["fanout"].get(k) and run["after"]["fanout"].get(k)}
                   for run in results["runs"]]
        results["before_over_after"] = {"per_run": per_run, "median": {
            k: float(np.median([r[k] for r in per_run if k in r])) for k in keys if any(k in r for r in per_run)}}
        print("before/after, fan-out, median of runs: "
              + ", ".join(f"{k} {v:.1f}x" for k, v in results["before_over_after"]["median"].items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}" + (f" (raw files in {tmp})" if args.keep_raw else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
