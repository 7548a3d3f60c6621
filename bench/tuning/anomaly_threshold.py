"""How the anomaly profile's alarm threshold behaves on short, tight enrollments: false alarms per hour
of normal audio and detection per fault type, through the detector's episode lifecycle.

AUC does not depend on the threshold, so this measures what users see: episode starts. Per machine
unit (generated factory machine, machine x instance, development seeds 55_xxx, never the held-out
seed 99) and per scenario (window, hop, enrollment seconds):

* a normal clip: the first ``enroll`` seconds enroll the profile (mel features, kNN k=3, overlapping
  enrollment windows left out of calibration, as in the service); every episode start on the rest is a
  false alarm;
* one clip per fault type of the machine (same recipe, fault from ``onset`` on, severity drawn in
  [0.3, 0.9]): enrolled on its own first seconds; starts before the onset count as false alarms too; a
  start whose window ends after the onset is a detection, its delay is that window's end minus the
  onset;
* a stationary synthetic hum (440 Hz + harmonic, slow level wobble, faint noise: the service
  end-to-end scenario's kind of machine), normal only.

Each threshold rule (``percentile`` of the held-out enrollment distances, raised to at least
``median + z * 1.4826 * MAD`` and ``min_ratio * median``) is applied to the same profile and distances;
scores go through the real ``NormalProfile.score`` and ``EpisodeTracker`` with the default anomaly
episode settings (on after 2 windows, 30 s cooldown). The model's P(abnormal) is left out (a random or
untrained model says nothing; at the default weight 0.1 an uninformative 0.5 moves the on-threshold by
nothing and the off-threshold by 0.02).

Also, with ``--dev DIR`` (the seed-55 development folder; make it with ``python -m edge_coat.data.factory
--out runs/anomaly-dev --n 200 --seed 55 --duration 5 --instances 3``): clip level, the split of ``edge-coat
eval --task anomaly`` (per machine type, the first half of its normal clips enroll, one vector per clip),
the share of test clips whose profile score reaches 0.5 per rule, normal and per fault.

    python -m bench.tuning.anomaly_threshold                 # 5 machines x 2 instances, both scenarios (~3 min)
    python -m bench.tuning.anomaly_threshold --instances 1   # quicker
    python -m bench.tuning.anomaly_threshold --dev runs/anomaly-dev

Prints a table per scenario and writes bench/results/anomaly_threshold.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, finish, machine
from edge_coat.data.factory import MACHINES, faults_for, render_clip
from edge_coat.detectors.config import AnomalyConfig
from edge_coat.detectors.episode import EpisodeTracker
from edge_coat.detectors.features import mel_statistics
from edge_coat.detectors.profile import NormalProfile, calibrated_threshold
from edge_coat.messages import SAMPLE_RATE

SCENARIOS = ((1.0, 0.5, 12.0), (2.0, 1.0, 20.0))  # (window s, hop s, enrollment s): service test, demo
NORMAL_S = 120.0
FAULT_ONSET_S = 30.0
FAULT_S = 50.0
#: (percentile, robust z, min ratio to the median): the previous rule first, then the grid searched
RULES = [(99.0, 0.0, 1.0), (95.0, 0.0, 1.0)] + [
    (99.0, z, r) for z in (0.0, 5.0, 8.0) for r in (1.0, 1.25, 1.3, 1.4, 1.5, 1.75) if (z, r) != (0.0, 1.0)
]


def hum(duration_s: float, seed: int) -> np.ndarray:
    """A near-stationary hum: the tight case (few features move at all)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * SAMPLE_RATE)) / SAMPLE_RATE  # (N,)
    wobble = 1.0 + 0.1 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6.28))
    wave = 0.2 * wobble * (np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 880 * t))
    return (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def windows(wave: np.ndarray, window_s: float, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Mel features (W, F) and spans (W, 2) seconds of every whole window."""
    n, h = int(window_s * SAMPLE_RATE), int(hop_s * SAMPLE_RATE)
    starts = np.arange(0, wave.size - n + 1, h)
    feats = np.stack([mel_statistics(wave[s:s + n]) for s in starts])  # (W, F)
    spans = np.stack([starts / SAMPLE_RATE, (starts + n) / SAMPLE_RATE], axis=1)  # (W, 2)
    return feats, spans


def episode_starts(profile: NormalProfile, dists: np.ndarray, spans: np.ndarray) -> list[float]:
    """Window end times (s) of the episode starts that the default episode settings give."""
    tracker = EpisodeTracker(AnomalyConfig().episode, "bench")
    out = []
    for d, (s, e) in zip(dists, spans):
        tr = tracker.step(profile.score(float(d)), float(s), float(e))
        if tr is not None and tr.phase == "start":
            out.append(float(e))
    return out


def run_clip(wave, scenario, onset: float | None, severity: float = 0.0) -> dict:
    """Enroll on the clip's first seconds; per rule: false alarms (count, normal seconds judged),
    detected and delay (for a fault)."""
    window_s, hop_s, enroll_s = scenario
    feats, spans = windows(wave, window_s, hop_s)
    enr = spans[:, 1] <= enroll_s
    base = NormalProfile.fit(feats[enr], k=3, percentile=99.0, features="mel", spans=spans[enr])
    dists = np.array([base.distance(v) for v in feats[~enr]])  # (W_test,)
    test_spans = spans[~enr]
    end_normal = onset if onset is not None else wave.size / SAMPLE_RATE
    ratios = dists[test_spans[:, 1] <= end_normal] / base.median  # normal windows' distance / enrollment median
    out = {"normal_s": end_normal - enroll_s, "severity": severity, "ratio_median": ratios.tolist(), "rules": {}}
    for pct, z, ratio in RULES:
        prof = dataclasses.replace(base, threshold=calibrated_threshold(base.calib, pct, z, ratio))
        starts = episode_starts(prof, dists, test_spans)
        fa = sum(1 for e in starts if onset is None or e <= onset)
        hit = [e - onset for e in starts if onset is not None and e > onset]
        out["rules"][f"p{pct:g} z{z:g} r{ratio:g}"] = {"false_alarms": fa, "delay_s": hit[0] if hit else None}
    return out


def dev_clips(folder: Path) -> dict:
    """Clip-level share above the threshold per rule on a generated dataset folder (eval's split)."""
    from edge_coat.data.folder import DatasetFolder
    from edge_coat.train.evaluate import split_enrollment

    data = DatasetFolder(folder)
    feats = np.stack([mel_statistics(data.load(c)) for c in data.clips])  # (N, F)
    enrolled, test = split_enrollment(data.clips, None)
    out = {}
    for pct, z, ratio in RULES:
        above = {}
        for machine, idx in enrolled.items():
            prof = NormalProfile.fit(feats[idx], k=3, percentile=pct, features="mel", robust_z=z, min_ratio=ratio)
            for i in test:
                clip = data.clips[i]
                if clip.meta.get("machine", "") == machine:
                    key = "normal" if clip.label == "normal" else clip.meta.get("fault", "abnormal")
                    above.setdefault(key, []).append(prof.score(prof.distance(feats[i])) >= 0.5)
        out[f"p{pct:g} z{z:g} r{ratio:g}"] = {k: [int(sum(v)), len(v)] for k, v in sorted(above.items())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=2, help="machine instances per machine type")
    ap.add_argument("--out", type=Path, default=RESULTS / "anomaly_threshold.json")
    ap.add_argument("--dev", type=Path, help="also score this generated dataset folder clip by clip")
    args = ap.parse_args(argv)
    start_machine, t0 = machine(), time.time()
    report = {"scenarios": {}, "rules": [list(r) for r in RULES]}
    if args.dev:
        report["dev_clips"] = dev_clips(args.dev)
        print(f"{args.dev}: test clips at or above the threshold (profile score >= 0.5), per rule")
        for rule, row in report["dev_clips"].items():
            print(f"{rule:<20} " + " ".join(f"{k[:10]} {a}/{n}" for k, (a, n) in row.items()))
    rng = np.random.default_rng(55)
    clips = []  # (unit, fault or None, wave, onset, severity)
    for m_i, name in enumerate(MACHINES):
        for inst in range(args.instances):
            seed = 55_100_000 + 100 * m_i + inst
            clips.append((f"{name}/{inst}", None, render_clip(name, seed=seed, duration_s=NORMAL_S,
                                                              instance=inst).wave, None, 0.0))
            for fault in faults_for(name):
                sev = float(rng.uniform(0.3, 0.9))
                clips.append((f"{name}/{inst}", fault, render_clip(
                    name, seed=seed, duration_s=FAULT_S, instance=inst, fault=fault, onset_s=FAULT_ONSET_S,
                    severity=sev).wave, FAULT_ONSET_S, sev))
    for h in range(3):
        clips.append((f"hum/{h}", None, hum(NORMAL_S, 5500 + h), None, 0.0))
    print(f"rendered {len(clips)} clips in {time.time() - t0:.0f} s", flush=True)
    for scenario in SCENARIOS:
        rows = [(unit, fault, run_clip(wave, scenario, onset, sev)) for unit, fault, wave, onset, sev in clips]
        key = f"window {scenario[0]:g} s hop {scenario[1]:g} s enroll {scenario[2]:g} s"
        table = {}
        for rule in rows[0][2]["rules"]:
            normal_s = sum(r["normal_s"] for _, _, r in rows)
            fa = sum(r["rules"][rule]["false_alarms"] for _, _, r in rows)
            hum_fa = sum(r["rules"][rule]["false_alarms"] for u, _, r in rows if u.startswith("hum"))
            per_fault = {}
            for fault in sorted({f for _, f, _ in rows if f}):
                delays = [r["rules"][rule]["delay_s"] for _, f, r in rows if f == fault]
                got = [d for d in delays if d is not None]
                missed = [round(r["severity"], 2) for _, f, r in rows
                          if f == fault and r["rules"][rule]["delay_s"] is None]
                per_fault[fault] = {"detected": len(got), "of": len(delays), "missed_severities": missed,
                                    "median_delay_s": float(np.median(got)) if got else None,
                                    "max_delay_s": float(np.max(got)) if got else None}
            table[rule] = {"false_alarms": fa, "normal_hours": normal_s / 3600,
                           "fa_per_hour": fa / (normal_s / 3600), "hum_false_alarms": hum_fa, "faults": per_fault}
        ratios = np.concatenate([r["ratio_median"] for _, _, r in rows])
        report["scenarios"][key] = {"table": table, "normal_distance_over_median_p50_p99_max": [
            float(np.percentile(ratios, 50)), float(np.percentile(ratios, 99)), float(ratios.max())]}
        print(f"\n{key}: normal distance / enrollment median: p50 %.2f p99 %.2f max %.2f"
              % tuple(report["scenarios"][key]["normal_distance_over_median_p50_p99_max"]))
        faults = list(next(iter(table.values()))["faults"])
        print(f"{'rule':<20} {'FA/h':>6} {'hum FA':>6} " + " ".join(f"{f[:10]:>14}" for f in faults))
        for rule, row in table.items():
            cells = " ".join(f"{v['detected']:>2}/{v['of']:<2} {v['median_delay_s'] or float('nan'):>5.1f}s  "
                             for v in row["faults"].values())
            print(f"{rule:<20} {row['fa_per_hour']:>6.1f} {row['hum_false_alarms']:>6d} {cells}")
    report.update(wall_s=time.time() - t0, machine_start=start_machine, machine_end=machine())
    return finish(args.out, report)


if __name__ == "__main__":
    raise SystemExit(main())
