"""Prometheus metrics of a running service, read from the stages' ``stats()`` at scrape time.

The hot path keeps its own plain counters (the worker's per-stream counters, the model stage's
latency histograms, the service's event counts); :class:`ServiceCollector` turns one ``stats()``
snapshot into metric families when Prometheus scrapes, so nothing is instrumented twice.

Names (all prefixed ``edge_coat_``):

=============================================  =========  ==========================================
stream_audio_seconds_total{stream}             counter    audio received by the worker
stream_gap_seconds_total{stream}               counter    audio reported missing (outages, drops)
stream_windows_processed_total{stream}         counter    windows sent to the model (passed the gate)
stream_windows_skipped_total{stream}           counter    windows the gate skipped (quiet / no speech)
stream_windows_in_gap_total{stream}            counter    windows not cut because audio was missing
stream_active{stream}                          gauge      1 while the stream is connected and not ended
queue_depth{queue}                             gauge      ingest (chunks), batch (windows), sender inbox
windows_dropped_total                          counter    windows dropped by a full batch queue
stage_errors_total                             counter    model batches that raised
model_latency_seconds{stage}                   histogram  per batch: encode, thinking, llm, readings, total
model_windows_total / model_batches_total      counter    windows and batches through the model
model_encoder_chunks_total{outcome}            counter    encoder chunks: hit (reused from the stream's
                                                          cache), encoded, shared (by windows of a batch)
model_encoder_cache_bytes / _chunks / _streams gauge      what the per-stream encoder cache holds
model_baseline_streams                         gauge      streams with a baseline for a relative readout
model_info{name,version,family,quantization,thinking}  gauge  1
events_total{kind,phase}                       counter    events written to the log by this process
events_followed_total{kind,phase}              counter    events the event service read from the log
event_log_head                                 gauge      newest event id in the log
subscribers                                    gauge      live gRPC subscribers
capture_online{stream} / capture_audio_seconds_total{stream} / capture_buffered_seconds{stream}
capture_connected                              gauge      the capture link to the worker is up
uptime_seconds                                 gauge
input_rejected_total{edge,reason}              counter    inputs refused at the edges: wire messages
                                                          (malformed, out_of_range, ...), gRPC bodies,
                                                          detector-refused windows, NaN/inf samples
=============================================  =========  ==========================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger(__name__)

P = "edge_coat_"


def _fmt_bound(b: float) -> str:
    return repr(float(b))


class ServiceCollector(Collector):
    """Builds every metric family from ``stats_fn()`` (the service's ``stats()``)."""

    def __init__(self, stats_fn: Callable[[], dict]):
        self.stats_fn = stats_fn

    def collect(self):
        try:
            s = self.stats_fn()
        except Exception:  # noqa: BLE001 - a failing scrape must not take the HTTP thread down
            log.exception("metrics: reading the service's stats failed")
            return
        yield from self._streams(s.get("worker"))
        yield from self._model(s.get("stage") or {}, s.get("model") or {})
        yield from self._events(s.get("events") or {})
        yield from self._capture(s.get("capture") or {}, s.get("sender"))
        rejected = CounterMetricFamily(P + "input_rejected", "inputs refused at the edges of this process",
                                       labels=["edge", "reason"])
        for (edge, reason), n in sorted((s.get("rejected") or {}).items()):
            rejected.add_metric([edge, reason], float(n))
        yield rejected
        up = GaugeMetricFamily(P + "uptime_seconds", "seconds since the service started")
        up.add_metric([], float(s.get("uptime_s", 0.0)))
        yield up

    # ---- per stream and queues ---------------------------------------------------------------------
    @staticmethod
    def _streams(w: dict | None):
        if w is None:
            return
        per = {
            "audio_s_in": ("stream_audio_seconds", "audio received by the worker, seconds"),
            "gap_s": ("stream_gap_seconds", "audio reported missing (outages, drops), seconds"),
            "windows_processed": ("stream_windows_processed", "windows sent to the model (passed the gate)"),
            "windows_skipped": ("stream_windows_skipped", "windows the gate skipped (quiet or no speech)"),
            "windows_in_gap": ("stream_windows_in_gap", "windows not cut because their audio was missing"),
        }
        fams = {k: CounterMetricFamily(P + name, doc, labels=["stream"]) for k, (name, doc) in per.items()}
        active = GaugeMetricFamily(P + "stream_active", "1 while the stream is connected and not ended",
                                   labels=["stream"])
        for sid, st in sorted(w.get("streams", {}).items()):
            for k, fam in fams.items():
                fam.add_metric([sid], float(st.get(k, 0)))
            active.add_metric([sid], 1.0 if st.get("active") else 0.0)
        yield from fams.values()
        yield active
        depth = GaugeMetricFamily(P + "queue_depth", "items waiting: ingest (chunks), batch (windows)",
                                  labels=["queue"])
        for q, n in sorted(w.get("queues", {}).items()):
            depth.add_metric([q], float(n))
        yield depth
        dropped = CounterMetricFamily(P + "windows_dropped", "windows dropped by a full batch queue")
        dropped.add_metric([], float(w.get("batch_dropped", 0)))
        yield dropped
        errors = CounterMetricFamily(P + "stage_errors", "model batches that raised")
        errors.add_metric([], float(w.get("totals", {}).get("stage_errors", 0)))
        yield errors

    # ---- model -------------------------------------------------------------------------------------
    @staticmethod
    def _model(stage: dict, info: dict):
        if info:
            fam = GaugeMetricFamily(P + "model_info", "the loaded model (value 1)",
                                    labels=["name", "version", "family", "quantization", "encoder", "thinking"])
            fam.add_metric([str(info.get(k, "")) for k in ("name", "version", "family", "quantization", "encoder",
                                                           "thinking")],
                           1.0)
            yield fam
        latency = stage.get("latency_s")
        if latency:
            fam = HistogramMetricFamily(P + "model_latency_seconds", "model stage time per batch, by stage",
                                        labels=["stage"])
            for name, h in latency.items():
                bounds = [_fmt_bound(b) for b in h["buckets"]] + ["+Inf"]
                fam.add_metric([name], list(zip(bounds, (float(c) for c in h["cumulative"]))), h["sum"])
            yield fam
        for key, name, doc in (("windows", "model_windows", "windows through the model stage"),
                               ("batches", "model_batches", "batches through the model stage")):
            if key in stage:
                fam = CounterMetricFamily(P + name, doc)
                fam.add_metric([], float(stage[key]))
                yield fam
        if "baseline_streams" in stage:
            g = GaugeMetricFamily(P + "model_baseline_streams", "streams with a baseline for a relative answer readout")
            g.add_metric([], float(stage["baseline_streams"]))
            yield g
        desks = stage.get("desk_windows")
        if desks:
            g = GaugeMetricFamily(P + "model_desk_windows", "speech windows a line's desk baseline has heard (a desk "
                                  "readout; a new line warms over the model's first readout_baseline_windows)",
                                  labels=["stream"])
            for stream, count in sorted(desks.items()):
                g.add_metric([stream], float(count))
            yield g
        cache = stage.get("encoder_cache")
        if cache:
            fam = CounterMetricFamily(P + "model_encoder_chunks", "encoder chunks by outcome (the per-stream cache)",
                                      labels=["outcome"])
            for outcome, key in (("hit", "hits"), ("encoded", "encoded"), ("shared", "shared_in_batch"),
                                 ("encoded_ahead", "ahead_encoded")):
                fam.add_metric([outcome], float(cache.get(key, 0)))
            yield fam
            for key, doc in (("bytes", "bytes the encoder cache holds"), ("chunks", "encoded chunks it holds"),
                             ("streams", "streams it holds chunks for")):
                g = GaugeMetricFamily(P + f"model_encoder_cache_{key}", doc)
                g.add_metric([], float(cache.get(key, 0)))
                yield g

    # ---- events ------------------------------------------------------------------------------------
    @staticmethod
    def _events(e: dict):
        if not e:
            return
        fam = CounterMetricFamily(P + "events", "events written to the log by this process", labels=["kind", "phase"])
        for (kind, phase), n in sorted(e.get("by_kind", {}).items()):
            fam.add_metric([kind, phase], float(n))
        yield fam
        followed = e.get("followed_by_kind")
        if followed is not None:
            fam = CounterMetricFamily(P + "events_followed", "events the event service read from the log since it "
                                      "started (and fanned out to matching subscribers)", labels=["kind", "phase"])
            for (kind, phase), n in sorted(followed.items()):
                fam.add_metric([kind, phase], float(n))
            yield fam
        for key, name, doc in (("head", "event_log_head", "newest event id in the log"),
                               ("subscribers", "subscribers", "live gRPC subscribers"),
                               ("pending", "events_pending", "events waiting to be written after a log error")):
            if e.get(key) is not None:
                g = GaugeMetricFamily(P + name, doc)
                g.add_metric([], float(e[key]))
                yield g

    # ---- capture -----------------------------------------------------------------------------------
    @staticmethod
    def _capture(cap: dict, sender: dict | None):
        if not cap:
            return
        online = GaugeMetricFamily(P + "capture_online", "1 while the source delivers audio", labels=["stream"])
        audio = CounterMetricFamily(P + "capture_audio_seconds", "audio read from the source, seconds",
                                    labels=["stream"])
        buffered = GaugeMetricFamily(P + "capture_buffered_seconds", "audio held until the worker acknowledges it",
                                     labels=["stream"])
        sent = (sender or {}).get("streams", {})
        for sid, st in sorted(cap.items()):
            online.add_metric([sid], 1.0 if st.get("online") else 0.0)
            audio.add_metric([sid], float(st.get("audio_s", 0.0)))
            buffered.add_metric([sid], float(sent.get(sid, {}).get("buffered_s", 0.0)))
        yield from (online, audio, buffered)
        if sender is not None:
            g = GaugeMetricFamily(P + "capture_connected", "1 while the capture link to the worker is up")
            g.add_metric([], 1.0 if sender.get("connected") else 0.0)
            yield g
            q = GaugeMetricFamily(P + "capture_inbox", "chunks waiting for the sender thread")
            q.add_metric([], float(sender.get("inbox", 0)))
            yield q


def start_metrics_server(listen: str, stats_fn: Callable[[], dict]):
    """Serve /metrics on ``host:port`` (port 0: any); returns (http server, bound port).

    A registry of its own per service (not prometheus_client's global one), so two services in one
    process (tests) never mix their metrics."""
    from prometheus_client import start_http_server
    from prometheus_client.process_collector import ProcessCollector

    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(stats_fn))
    ProcessCollector(registry=registry)
    httpd, _thread = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=registry)
    return httpd, int(httpd.server_port)
