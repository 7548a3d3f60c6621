"""Synthetic factory sound: machines with and without faults, reproducible from a seed.

Each clip is built from physical ingredients:

* a **machine** (motor, fan, pump, compressor, conveyor): rotation harmonics at a drifting shaft
  frequency, its blade/vane/slot/piston pass tones, broadband noise shaped per machine, slow
  level drift;
* optionally a **fault** from its onset on (with a short ramp, or a long one for a scene where it
  develops): bearing impacts at a BPFO-like rate ringing a structural resonance, imbalance (1x
  amplitude modulation and a 1x tone), squeal (a narrow-band high tone with wobble), rubbing
  (friction noise gated at the rotation rate), cavitation (random broadband crackle bursts;
  pumps), intermittent dropout (the machine stalls and coasts);
* a **room**: the machine and its fault are convolved with a synthetic impulse response
  (exponentially decaying noise, RT60 per machine instance);
* **background clutter**: mains hum, distant low-passed impacts and speech-like babble noise.

Random streams are separate (instance, clip, fault, clutter), so the same seed with and without a
fault gives sample-identical audio before the fault's onset: the label's onset is exactly where
the audio changes. A machine *instance* (its shaft speed, blade count, room) is fixed by
(machine, instance); the clip seed varies drift, noise and clutter.

Entry point: ``python -m edge_coat.data.factory --out DIR --n 100 --seed 0`` writes a dataset
folder (``labels.csv`` + WAV files); ``--scene 60`` writes one long scene instead.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)

MACHINES: tuple[str, ...] = ("motor", "fan", "pump", "compressor", "conveyor")
FAULTS: tuple[str, ...] = ("bearing", "imbalance", "squeal", "rubbing", "cavitation", "dropout")
#: Faults that only make sense on some machines; the rest fit every machine.
FAULT_MACHINES: dict[str, tuple[str, ...]] = {"cavitation": ("pump",)}
#: Plain-words names of the faults (captions, answers).
FAULT_DESCRIPTIONS: dict[str, str] = {
    "bearing": "bearing impacts",
    "imbalance": "imbalance",
    "squeal": "a squeal",
    "rubbing": "rubbing",
    "cavitation": "cavitation bursts",
    "dropout": "intermittent stalls",
}
SR = SAMPLE_RATE


def faults_for(machine: str) -> tuple[str, ...]:
    """The fault types that can occur on ``machine``."""
    _check_machine(machine)
    return tuple(f for f in FAULTS if machine in FAULT_MACHINES.get(f, MACHINES))


def _check_machine(machine: str) -> None:
    if machine not in MACHINES:
        raise ValueError(f"unknown machine {machine!r}; expected one of {MACHINES}")


def _rng(*key: int | str) -> np.random.Generator:
    """An independent random stream per key (strings hashed stably, not with Python's hash())."""
    return np.random.default_rng([zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key])


def _sos(btype: str, freq, order: int = 4):
    from scipy.signal import butter

    return butter(order, freq, btype=btype, fs=SR, output="sos")


def _filtered_noise(rng: np.random.Generator, n: int, btype: str, freq, order: int = 4) -> np.ndarray:
    from scipy.signal import sosfilt

    return sosfilt(_sos(btype, freq, order), rng.standard_normal(n))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def _smooth_wander(rng: np.random.Generator, t: np.ndarray, depth: float, periods=(3.0, 20.0)) -> np.ndarray:
    """Slow drift: a sum of three sinusoids with random periods and phases, peak about ``depth``."""
    out = np.zeros_like(t)
    for _ in range(3):
        period = rng.uniform(*periods)
        out += np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return depth * out / 3.0


def _impulse_train(n: int, times_s: np.ndarray, amps: np.ndarray) -> np.ndarray:
    train = np.zeros(n)
    idx = np.round(times_s * SR).astype(int)
    keep = (idx >= 0) & (idx < n)
    np.add.at(train, idx[keep], amps[keep])
    return train


def _ringing(freq_hz: float, decay_s: float) -> np.ndarray:
    """A decaying sinusoid: how a struck structure rings."""
    t = np.arange(int(decay_s * 8 * SR)) / SR
    return np.exp(-t / decay_s) * np.sin(2 * np.pi * freq_hz * t)


# ---------------------------------------------------------------------------------------------
# Machines


@dataclass(frozen=True)
class MachineInstance:
    """One physical machine (fixed by machine type + instance number)."""

    machine: str
    shaft_hz: float
    harmonic_amps: tuple[float, ...]  # amplitudes of 1x, 2x, ... shaft harmonics
    harmonic_phases: tuple[float, ...]  # their phases (radians)
    pass_count: int  # blades / vanes / rotor slots / cylinders / rollers per shaft turn
    pass_gain: float
    noise_band: tuple[float, float]  # Hz, broadband noise band
    noise_gain: float
    hum_hz: float  # 100 or 120 Hz electrical hum (2x mains)
    rt60_s: float
    resonance_hz: float  # structural resonance a bearing fault rings
    squeal_hz: float


def machine_instance(machine: str, instance: int = 0) -> MachineInstance:
    """Draw the fixed parameters of ``machine`` number ``instance``."""
    _check_machine(machine)
    rng = _rng("instance", machine, instance)
    shaft = {
        "motor": (24.0, 50.0), "fan": (10.0, 25.0), "pump": (24.0, 50.0),
        "compressor": (12.0, 25.0), "conveyor": (3.0, 8.0),
    }[machine]
    passes = {"motor": (24, 36), "fan": (4, 9), "pump": (5, 7), "compressor": (2, 4), "conveyor": (2, 5)}[machine]
    pass_gain = {"motor": 0.15, "fan": 1.2, "pump": 1.0, "compressor": 0.8, "conveyor": 0.5}[machine]
    noise = {
        "motor": ((200.0, 3000.0), 0.5), "fan": ((80.0, 4000.0), 1.4), "pump": ((100.0, 1500.0), 0.9),
        "compressor": ((300.0, 6000.0), 0.7), "conveyor": ((30.0, 400.0), 1.2),
    }[machine]
    n_harm = 12 if machine == "compressor" else 8
    decay = rng.uniform(0.8, 1.4)
    amps = tuple(float(rng.uniform(0.5, 1.0) / k**decay) for k in range(1, n_harm + 1))
    return MachineInstance(
        machine=machine,
        shaft_hz=float(rng.uniform(*shaft)),
        harmonic_amps=amps,
        harmonic_phases=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, size=len(amps))),
        pass_count=int(rng.integers(passes[0], passes[1] + 1)),
        pass_gain=pass_gain,
        noise_band=noise[0],
        noise_gain=noise[1],
        hum_hz=float(rng.choice([100.0, 120.0])),
        rt60_s=float(rng.uniform(0.25, 0.9)),
        resonance_hz=float(rng.uniform(2600.0, 4200.0)),
        squeal_hz=float(rng.uniform(4500.0, 6500.0)),
    )


def _machine_signal(inst: MachineInstance, phase: np.ndarray, seed: int) -> np.ndarray:
    """The machine's own sound for a given shaft phase (radians, per sample). (N,) float64.

    Each ingredient draws from its own stream, so a phase that changes only after some time
    (a stall) leaves everything before it sample-identical.
    """
    n = len(phase)
    rng = _rng("machine-phases", seed)
    x = np.zeros(n)
    for k, (a, p) in enumerate(zip(inst.harmonic_amps, inst.harmonic_phases), start=1):
        x += a * np.sin(k * phase + p)
    if inst.machine in ("fan", "pump"):  # blade / vane pass tone and its harmonics
        for k, a in ((1, 1.0), (2, 0.45), (3, 0.2)):
            x += inst.pass_gain * a * np.sin(k * inst.pass_count * phase + rng.uniform(0, 2 * np.pi))
    elif inst.machine == "motor":  # electromagnetic hum + rotor-slot pass whine
        t = np.arange(n) / SR
        x += 0.6 * np.sin(2 * np.pi * inst.hum_hz * t) + 0.2 * np.sin(4 * np.pi * inst.hum_hz * t)
        x += inst.pass_gain * np.sin(inst.pass_count * phase)
    elif inst.machine in ("compressor", "conveyor"):  # valve clatter / roller clicks
        turns = np.floor(inst.pass_count * phase / (2 * np.pi))
        hits = np.flatnonzero(np.diff(turns) > 0) + 1
        amps = _rng("machine-clicks", seed).uniform(0.6, 1.0, size=len(hits)) * inst.pass_gain * 8.0
        band = (800.0, 3500.0) if inst.machine == "compressor" else (400.0, 2500.0)
        from scipy.signal import fftconvolve, sosfilt

        click = sosfilt(_sos("bandpass", band, 2), np.r_[1.0, np.zeros(int(0.02 * SR))])
        x += fftconvolve(_impulse_train(n, hits / SR, amps), click)[:n]
    noise = _filtered_noise(_rng("machine-noise", seed), n, "bandpass", inst.noise_band, 2)  # (N,)
    # Noise level from the harmonics' analytic RMS, not from x: x after a stall must not change it.
    tonal_rms = float(np.sqrt(0.5 * np.sum(np.square(inst.harmonic_amps)) + 0.5 * inst.pass_gain**2))
    return x + inst.noise_gain * tonal_rms * noise / _rms(noise)


def _room_ir(inst: MachineInstance, rng: np.random.Generator) -> np.ndarray:
    """Synthetic room impulse response: direct path + exponentially decaying (slightly dull) noise."""
    n = int(inst.rt60_s * SR)
    t = np.arange(n) / SR
    tail = _filtered_noise(rng, n, "lowpass", 5000.0, 2) * np.exp(-6.9 * t / inst.rt60_s)
    tail[: int(0.005 * SR)] = 0.0  # the first reflections arrive a few ms after the direct sound
    ir = 0.3 * tail / np.sqrt(np.sum(tail**2) + 1e-20)
    ir[0] = 1.0
    return ir


def _clutter(rng: np.random.Generator, n: int, hum_hz: float) -> np.ndarray:
    """Background: mains hum, distant thuds, speech-like babble. Unit-free; scaled by the caller."""
    from scipy.signal import fftconvolve

    t = np.arange(n) / SR
    hum = 0.5 * np.sin(2 * np.pi * hum_hz / 2 * t) + 0.3 * np.sin(2 * np.pi * hum_hz * t)
    n_thuds = rng.poisson(0.3 * n / SR)
    thud = _ringing(rng.uniform(60.0, 200.0), 0.03)
    thuds = fftconvolve(_impulse_train(n, rng.uniform(0, n / SR, n_thuds), rng.uniform(1, 4, n_thuds)), thud)[:n]
    babble = np.zeros(n)
    for _ in range(4):  # four distant talkers: speech-band noise with a syllable-rate envelope
        syllables = np.abs(_filtered_noise(rng, n, "lowpass", rng.uniform(3.0, 6.0), 2))
        babble += _filtered_noise(rng, n, "bandpass", (300.0, 3000.0), 2) * syllables / _rms(syllables)
    return hum / _rms(hum) * 0.3 + thuds / max(_rms(thuds), 1e-9) * 0.3 * (n_thuds > 0) + babble / _rms(babble) * 0.5


# ---------------------------------------------------------------------------------------------
# Faults


def _fault_signals(
    fault: str, inst: MachineInstance, phase: np.ndarray, shaft_hz: np.ndarray, onset: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Additive fault sound at full strength from ``onset`` (the caller scales and ramps it)
    and the band it occupies."""
    from scipy.signal import fftconvolve, sosfilt

    n = len(phase)
    t = np.arange(n) / SR
    if fault == "bearing":
        bpfo = float(np.mean(shaft_hz)) * rng.uniform(3.0, 5.2)  # outer-race defect rate
        times = np.arange(onset / SR, n / SR, 1.0 / bpfo) + rng.normal(0, 0.0005, size=1)
        times = times + rng.normal(0, 0.0003, size=len(times))  # slip jitter
        impacts = _impulse_train(n, times, rng.uniform(0.5, 1.0, size=len(times)))
        x = fftconvolve(impacts, _ringing(inst.resonance_hz, rng.uniform(0.0008, 0.0015)))[:n]
        return x, (inst.resonance_hz - 700.0, inst.resonance_hz + 700.0)
    if fault == "imbalance":
        f1 = float(np.mean(shaft_hz))
        return np.sin(phase + inst.harmonic_phases[0]), (0.7 * f1, 1.3 * f1)  # in phase with 1x
    if fault == "squeal":
        wobble = 1.0 + 0.012 * np.sin(2 * np.pi * rng.uniform(3, 7) * t) + 0.004 * _filtered_noise(rng, n, "lowpass", 2.0, 2)
        sq_phase = 2 * np.pi * np.cumsum(inst.squeal_hz * wobble) / SR
        flutter = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(1.5, 3.5) * t)
        x = (np.sin(sq_phase) + 0.2 * np.sin(2 * sq_phase)) * flutter
        return x, (inst.squeal_hz * 0.95, inst.squeal_hz * 1.05)
    if fault == "rubbing":
        turn = np.floor(phase / (2 * np.pi)).astype(int)
        contact = rng.random(turn.max() + 1) < 0.75  # not every turn rubs
        gate = (np.cos(phase - rng.uniform(0, 2 * np.pi)) > 0.6) & contact[turn]  # ~30% of a turn
        gate = sosfilt(_sos("lowpass", 150.0, 2), gate.astype(float))
        return _filtered_noise(rng, n, "bandpass", (1200.0, 2400.0), 4) * gate, (1200.0, 2400.0)
    if fault == "cavitation":
        n_bursts = rng.poisson(25.0 * (n - onset) / SR)
        times = rng.uniform(onset / SR, n / SR, size=n_bursts)
        env_kernel = np.exp(-np.arange(int(0.03 * SR)) / (rng.uniform(0.003, 0.008) * SR))
        env = fftconvolve(_impulse_train(n, times, rng.exponential(1.0, n_bursts)), env_kernel)[:n]
        return _filtered_noise(rng, n, "highpass", 2500.0, 4) * env, (3000.0, 7900.0)
    raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS}")


def _dropout_profile(n: int, onset: int, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Machine gain over time for the dropout fault: 1 until onset, then stalls dipping toward 0."""
    from scipy.signal import sosfiltfilt

    gain = np.ones(n)
    depth = 0.6 + 0.4 * severity
    start = onset + int(rng.uniform(0.05, 0.3) * SR)  # the first stall comes soon after onset
    while start < n:
        length = int(rng.uniform(0.25, 0.6) * SR)
        gain[start : start + length] = 1.0 - depth
        start += length + int(rng.exponential(2.0 - 1.2 * severity) * SR) + int(0.3 * SR)
    # Coast down/up over ~30 ms; clamp so nothing leaks before the onset.
    smooth = sosfiltfilt(_sos("lowpass", 12.0, 2), gain)
    smooth[:onset] = 1.0
    return np.clip(smooth, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class Rendered:
    """A rendered clip and the facts behind its label.

    Attributes:
        wave: (N,) float32, 16 kHz mono.
        machine / instance / seed: what and which random streams made it.
        fault: the fault type or None; onset_s / severity: when and how strong (0 when none).
        fault_band_hz: the band where the fault's sound lives ((lo, hi) Hz), or None;
            for ``dropout`` the band of the machine's stalled sound.
        shaft_hz: the instance's nominal shaft frequency.
    """

    wave: np.ndarray  # (N,) float32
    machine: str
    instance: int
    seed: int
    fault: str | None
    onset_s: float
    severity: float
    fault_band_hz: tuple[float, float] | None
    shaft_hz: float

    @property
    def label(self) -> str:
        return "normal" if self.fault is None else "abnormal"


def soft_limit(x: np.ndarray, knee: float = 0.9) -> np.ndarray:
    """Sample-wise saturation above ``knee`` (never past 1.0), like a microphone preamp.

    Sample-wise on purpose: scaling the whole clip by its peak would let a loud fault change the
    audio before its onset.
    """
    mag = np.abs(x)
    over = mag > knee
    if not over.any():
        return x
    y = x.copy()
    y[over] = np.sign(x[over]) * (knee + (1.0 - knee) * np.tanh((mag[over] - knee) / (1.0 - knee)))
    return y


def render_clip(
    machine: str,
    *,
    seed: int,
    duration_s: float = 4.0,
    fault: str | None = None,
    onset_s: float | None = None,
    severity: float = 0.7,
    instance: int = 0,
    ramp_s: float = 0.1,
    level_dbfs: float = -26.0,
) -> Rendered:
    """Render one clip of ``machine`` (instance ``instance``), optionally with ``fault``.

    ``onset_s`` defaults to a third of the clip; the fault fades in over ``ramp_s`` seconds and
    reaches ``severity`` (0..1; 1 puts the fault at about the machine's own level).
    The fault-free machine's RMS is set to ``level_dbfs`` (+-2 dB per seed), so adding a fault
    never changes the audio before its onset.
    """
    _check_machine(machine)
    if not 0.1 <= duration_s <= 3600:
        raise ValueError(f"duration_s must be in [0.1, 3600] seconds, got {duration_s}")
    if fault is not None and fault not in faults_for(machine):
        raise ValueError(f"fault {fault!r} does not fit a {machine}; expected one of {faults_for(machine)} or None")
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    onset_s = duration_s / 3 if onset_s is None else float(onset_s)
    if fault is not None and not 0.0 <= onset_s < duration_s:
        raise ValueError(f"onset_s must be in [0, duration_s={duration_s}), got {onset_s}")

    inst = machine_instance(machine, instance)
    n = int(round(duration_s * SR))
    t = np.arange(n) / SR
    clip_rng = _rng("clip", seed)
    onset = int(round(onset_s * SR))

    # Speed with slow drift (and stalls for dropout) -> shaft phase.
    speed = inst.shaft_hz * (1.0 + _smooth_wander(clip_rng, t, 0.015))  # (N,) Hz
    machine_gain = 1.0 + _smooth_wander(clip_rng, t, 0.1)  # ~ +-1 dB level drift
    fault_rng = _rng("fault", seed, fault or "none")
    ramp = np.clip((np.arange(n) - onset) / max(ramp_s * SR, 1.0), 0.0, 1.0) if fault else np.zeros(n)
    stall = _dropout_profile(n, onset, severity, fault_rng) if fault == "dropout" else np.ones(n)
    phase = 2 * np.pi * np.cumsum(speed) / SR  # (N,) radians
    source = _machine_signal(inst, phase, seed) * machine_gain  # (N,)
    ref_rms = _rms(source)  # the fault-free level every gain below is relative to

    band = None
    if fault == "dropout":  # the machine slows as it stalls: re-render with the coasting phase
        phase = 2 * np.pi * np.cumsum(speed * (0.6 + 0.4 * stall)) / SR
        source = _machine_signal(inst, phase, seed) * machine_gain * stall
        band = (0.5 * inst.shaft_hz, max(8.0 * inst.shaft_hz, inst.pass_count * inst.shaft_hz * 1.5))
    elif fault == "imbalance":
        source = source * (1.0 + 0.5 * severity * ramp * np.cos(phase + inst.harmonic_phases[0]))
    if fault is not None and fault != "dropout":
        extra, band = _fault_signals(fault, inst, phase, speed, onset, fault_rng)  # (N,), full strength
        gain_db = -20.0 + 18.0 * severity
        source = source + extra * ramp * (ref_rms * 10 ** (gain_db / 20) / _rms(extra[onset:]))

    from scipy.signal import fftconvolve

    ir = _room_ir(inst, _rng("room", machine, instance))
    room = fftconvolve(source, ir)[:n]
    room_ref = ref_rms * float(np.sqrt(np.sum(ir**2)))  # RMS of the fault-free machine in the room
    clutter_rng = _rng("clutter", seed)
    snr_db = clutter_rng.uniform(15.0, 25.0)
    clutter = _clutter(clutter_rng, n, inst.hum_hz)
    mix = room + clutter * (room_ref * 10 ** (-snr_db / 20) / _rms(clutter))
    target = 10 ** ((level_dbfs + clutter_rng.uniform(-2.0, 2.0)) / 20)
    wave = soft_limit(mix * (target / room_ref))
    return Rendered(
        wave=wave.astype(np.float32), machine=machine, instance=instance, seed=seed, fault=fault,
        onset_s=onset_s if fault else 0.0, severity=severity if fault else 0.0,
        fault_band_hz=band, shaft_hz=inst.shaft_hz,
    )


def render_scene(
    machine: str = "pump",
    *,
    duration_s: float = 60.0,
    fault: str = "cavitation",
    onset_s: float = 30.0,
    severity: float = 0.8,
    develop_s: float = 10.0,
    seed: int = 0,
    instance: int = 0,
) -> Rendered:
    """A long demo scene: the machine runs normally, then at ``onset_s`` a fault develops over
    ``develop_s`` seconds to ``severity``."""
    return render_clip(
        machine, seed=seed, duration_s=duration_s, fault=fault, onset_s=onset_s,
        severity=severity, instance=instance, ramp_s=develop_s,
    )


LABEL_COLUMNS: tuple[str, ...] = (
    "file", "label", "machine", "instance", "fault", "onset_s", "severity", "seed", "duration_s",
)


def write_dataset(
    out_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    duration_s: float = 4.0,
    abnormal_fraction: float = 0.5,
    machines: Sequence[str] = MACHINES,
    faults: Sequence[str] = FAULTS,
    instances: int = 1,
    severity_range: tuple[float, float] = (0.3, 1.0),
    onset_range: tuple[float, float] = (0.2, 0.6),
) -> Path:
    """Write ``n`` clips and ``labels.csv`` to ``out_dir``; return the csv's path.

    Machines cycle in order; a clip is abnormal with probability ``abnormal_fraction``, its fault
    drawn from those in ``faults`` that fit the machine, its onset at a fraction of the clip in
    ``onset_range`` and its severity in ``severity_range``. Columns: ``LABEL_COLUMNS``
    (``fault`` is ``none`` and ``onset_s`` empty for normal clips). Clip ``i`` uses seed
    ``seed * 1_000_000 + i``: ``render_clip`` with the row's values reproduces its audio.
    """
    import soundfile as sf

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    for m in machines:
        _check_machine(m)
    bad = [f for f in faults if f not in FAULTS]
    if bad:
        raise ValueError(f"unknown fault(s) {bad}; expected some of {FAULTS}")
    if not 0.0 <= abnormal_fraction <= 1.0:
        raise ValueError(f"abnormal_fraction must be in [0, 1], got {abnormal_fraction}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan_rng = _rng("dataset", seed)
    rows = []
    for i in range(n):
        machine = machines[i % len(machines)]
        instance = int(plan_rng.integers(instances))
        fits = [f for f in faults if f in faults_for(machine)]
        abnormal = bool(fits) and plan_rng.random() < abnormal_fraction
        fault = str(plan_rng.choice(fits)) if abnormal else None
        onset = round(float(plan_rng.uniform(*onset_range)) * duration_s, 3)
        severity = round(float(plan_rng.uniform(*severity_range)), 3)
        clip_seed = seed * 1_000_000 + i
        r = render_clip(
            machine, seed=clip_seed, duration_s=duration_s, fault=fault, onset_s=onset,
            severity=severity, instance=instance,
        )
        name = f"{i:05d}_{machine}.wav"
        sf.write(out / name, r.wave, SR, subtype="PCM_16")
        rows.append({
            "file": name, "label": r.label, "machine": machine, "instance": instance,
            "fault": fault or "none", "onset_s": onset if fault else "",
            "severity": severity if fault else 0, "seed": clip_seed, "duration_s": duration_s,
        })
    csv_path = out / "labels.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    log.info("wrote %d clips to %s", n, out)
    return csv_path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_coat.data.factory", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--n", type=int, default=100, help="number of clips (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per clip (default 4)")
    p.add_argument("--abnormal-fraction", type=float, default=0.5, help="share of clips with a fault")
    p.add_argument("--machines", nargs="+", default=list(MACHINES), choices=MACHINES)
    p.add_argument("--faults", nargs="+", default=list(FAULTS), choices=FAULTS)
    p.add_argument("--instances", type=int, default=1, help="machine instances per type (default 1)")
    p.add_argument("--scene", type=float, metavar="SECONDS",
                   help="write one long scene (normal, then a developing fault) instead of a dataset")
    p.add_argument("--onset", type=float, help="scene: fault onset in seconds (default: half way)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.scene:
            import soundfile as sf

            machine, fault = args.machines[0], args.faults[0]
            onset = args.onset if args.onset is not None else args.scene / 2
            r = render_scene(machine, duration_s=args.scene, fault=fault, onset_s=onset, seed=args.seed)
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"scene_{machine}_{fault}_{args.seed}.wav"
            sf.write(path, r.wave, SR, subtype="PCM_16")
            print(f"{path}: {machine}, {fault} from {onset:.1f} s, {args.scene:.0f} s long")
        else:
            csv_path = write_dataset(
                args.out, args.n, seed=args.seed, duration_s=args.duration,
                abnormal_fraction=args.abnormal_fraction, machines=args.machines,
                faults=args.faults, instances=args.instances,
            )
            print(f"{csv_path}: {args.n} clips")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
