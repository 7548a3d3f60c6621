"""Helpers shared by the benchmark scripts: the machine, summaries, JSON output, the default model.

The scripts are modules of the ``bench`` package, run from the repository root (``python -m
bench.speed.bench_streams``, ``python -m bench.run_all``), so they import this module and ``edge_coat``
without editing ``sys.path``. Layout: ``bench/speed/`` (speed benchmarks, run by ``run_all``),
``bench/accuracy/`` (accuracy references), ``bench/tuning/`` (the measurements behind defaults).

* :func:`machine` describes where a figure was measured (``nproc``, CPU model, load average, versions);
  every result JSON carries it, at the start and at the end of the run, since this VM is shared.
* :func:`summary` is the one way a repeated figure is reported: median, min/max, interquartile range, n.
* :func:`default_model` is the embedded default ``models/coat-tiny`` when it has been trained, else a
  model of the same architecture (Qwen2-Audio family, size preset ``tiny``, 5 s encoder window, K=8,
  the project's tasks) with random weights, exported as a verified bundle with its ONNX thinking block
  (speed does not depend on weight values). It is built once and cached under ``bench/results/``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

RESULTS = REPO / "bench" / "results"
EMBEDDED = REPO / "models" / "coat-tiny"
#: where the random stand-in for coat-tiny is cached (bench/results is gitignored)
RANDOM_TINY = RESULTS / "coat-tiny-random"

log = logging.getLogger(__name__)


# ---- the machine ----------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    """Where and when: nproc, CPU model, load average (1/5/15 min), Python/torch versions."""
    out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "nproc": os.cpu_count(), "cpu": cpu_model(),
           "loadavg": load_average(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        out["torch"] = metadata.version("torch")  # without importing it (run_all stays light)
    except metadata.PackageNotFoundError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch_threads"] = torch.get_num_threads()
    return out


# ---- summaries ------------------------------------------------------------------------------------
def summary(xs) -> dict:
    """Median, min, max, interquartile range and count of repeated measurements (NaN-free)."""
    a = np.asarray([x for x in xs if x is not None and np.isfinite(x)], dtype=np.float64)  # (n,)
    if a.size == 0:
        return {"median": None, "min": None, "max": None, "iqr": None, "n": 0}
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "min": float(a.min()), "max": float(a.max()), "iqr": float(q3 - q1),
            "n": int(a.size)}


def fmt(s: dict, digits: int = 2) -> str:
    """'median [min..max]' of a :func:`summary` (one table cell)."""
    if not s or s.get("median") is None:
        return "-"
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}..{s['max']:.{digits}f}]"


def write_json(path: Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)  # a reader (run_all) never sees half a file
    return path


def finish(out: Path, result: dict) -> int:
    """Print the load average over the run, write the result JSON, say where: a bench's last step."""
    start, end = result.get("machine_start") or {}, result.get("machine_end") or {}
    print(f"load average {start.get('loadavg')} -> {end.get('loadavg')} ({start.get('nproc')} CPUs)")
    write_json(out, result)
    print(f"wrote {out}")
    return 0


def capped_window(asked: float, model_max_s: float, hop: float) -> tuple[float, str]:
    """(window seconds used, note): the site config refuses windows longer than the model accepts
    (``model_max_s``: ``CoatModel.max_window_seconds``; longer than the encoder input means chunks)."""
    if asked <= model_max_s:
        return asked, ""
    return model_max_s, (f"{asked:g} s windows asked; the model accepts at most {model_max_s:g} s and the "
                         f"site config refuses longer windows, so {model_max_s:g} s windows (hop {hop:g} s) "
                         "were measured")


# ---- the default model ----------------------------------------------------------------------------
def default_model(cache: Path = RANDOM_TINY, *, onnx: bool = True) -> tuple[Path, str]:
    """(model folder, description): the trained ``models/coat-tiny`` if present, else the random
    stand-in of the same architecture (built and exported once into ``cache``)."""
    if (EMBEDDED / "coat_config.json").is_file():
        return EMBEDDED, "models/coat-tiny (trained)"
    what = "random-weight stand-in for coat-tiny (qwen2_audio, preset tiny, 5 s, K=8)"
    bundle = cache / "bundle"
    if onnx and (bundle / "manifest.json").is_file():
        return bundle, what + ", ONNX bundle"
    raw = cache / "model"
    if not (raw / "coat_config.json").is_file():
        build_random_tiny(raw)
    if not onnx:
        return raw, what + ", torch thinking block"
    from edge_coat.export.bundle import export_bundle

    try:
        export_bundle(raw, bundle, name="coat-tiny-random", version="bench",
                      license="none (random weights, benchmarks only)", force=True)
    except Exception as exc:  # noqa: BLE001 - fall back to the torch block, and say so
        log.warning("ONNX export of the stand-in failed (%s): torch thinking block instead", exc)
        return raw, what + f", torch thinking block (export failed: {exc})"
    return bundle, what + ", ONNX bundle"


def build_random_tiny(out: Path, *, seed: int = 0) -> Path:
    """A new model exactly as ``edge-coat train --init qwen2_audio --size tiny --max-seconds 5
    --num-thinking 8`` makes it before its first step (the training pipeline's own builder), saved."""
    from edge_coat.train.config import DataSource, TrainConfig
    from edge_coat.train.pipeline import expert_specs, task_specs
    from edge_coat.train.trainer import new_model

    tasks = ("emotion", "anomaly", "events", "fault")
    config = TrainConfig(data=[DataSource(path="unused", task=t) for t in tasks], init_family="qwen2_audio",
                         init_size="tiny", max_seconds=5, num_thinking=8, seed=seed)
    _, specs = expert_specs(config)
    model = new_model(config, task_specs(tasks), specs)
    model.save_pretrained(out)
    return out


def model_section(path: Path, *, threads: int = 1, readings: list[str] | None = None, encoder: str = "onnx",
                  cache: bool = True):
    """The ``model:`` section a site would write for this model folder (ONNX block when it has one; the
    ONNX encoder when it has encoder.onnx and ``encoder`` is "onnx"; the encoder cache unless ``cache`` is
    False), every runtime pinned to ``threads``."""
    from edge_coat.config import ModelSection

    bundle = (Path(path) / "manifest.json").is_file()
    thinking = {"backend": "onnx" if (Path(path) / "thinking.onnx").is_file() else "torch",
                "verify_bundle": bundle, "intra_op_threads": threads}
    extra = {} if readings is None else {"readings": readings}
    return ModelSection(path=Path(path), thinking=thinking, encoder={"backend": encoder, "intra_op_threads": threads},
                        torch_threads=threads, encoder_cache={"enabled": cache}, **extra)
