"""Tasks: what the model is asked after the thinking block, and the answer a labelled clip gets.

A task has a prompt and, for classification, the candidate answers the model scores by their
log-likelihood. The training answer of a classification clip is exactly one candidate (the text
scored at inference is the text trained), so the fault type of an abnormal machine is its own task
(``fault``) rather than a suffix on ``abnormal``. ``caption`` is free text built from the labels
and metadata ("a pump with cavitation bursts").

Use ``get_task(name).answer(label, meta)``; ``prompts()`` gives {task: prompt} for a batch maker,
and ``task.labels`` the candidates for a model's task table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_coat.data.factory import FAULT_DESCRIPTIONS, FAULTS, MACHINES

EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
EVENTS: tuple[str, ...] = (
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
)
ANOMALY: tuple[str, ...] = ("normal", "abnormal")
FAULT_ANSWERS: tuple[str, ...] = ("none",) + FAULTS

_EMOTION_WORDS = {"disgust": "disgusted"}
_EVENT_CAPTIONS = {
    "air_conditioner": "an air conditioner humming",
    "car_horn": "a car horn honking",
    "children_playing": "children playing",
    "dog_bark": "a dog barking",
    "drilling": "a drill running",
    "engine_idling": "an engine idling",
    "gun_shot": "a gunshot",
    "jackhammer": "a jackhammer pounding",
    "siren": "a siren wailing",
    "street_music": "music playing in the street",
}


@dataclass(frozen=True)
class Task:
    """One task.

    Attributes:
        name: the task's key (``emotion``, ``anomaly``, ``fault``, ``events``, ``caption``).
        prompt: the text placed after the thinking block.
        labels: candidate answers scored by likelihood; empty for free-text tasks.
        description: one line for help texts.
    """

    name: str
    prompt: str
    labels: tuple[str, ...]
    description: str

    @property
    def free_text(self) -> bool:
        return not self.labels

    def answer(self, label: str, meta: Mapping[str, str] | None = None) -> str:
        """The answer text for a clip with dataset ``label`` and extra columns ``meta``."""
        meta = meta or {}
        if self.name == "caption":
            return caption(label, meta)
        if self.name == "fault":
            return fault_answer(label, meta)
        if label not in self.labels:
            raise ValueError(f"task {self.name!r}: label {label!r} is not a candidate; expected one of {self.labels}")
        return label


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("emotion", "what emotion does the speaker express ?", EMOTIONS,
             "speaker emotion (the 8 RAVDESS classes)"),
        Task("anomaly", "is this machine sound normal or abnormal ?", ANOMALY,
             "machine condition: normal or abnormal"),
        Task("fault", "what fault does this machine have ?", FAULT_ANSWERS,
             "fault type of a machine ('none' when normal)"),
        Task("events", "which sound event is this ?", EVENTS,
             "sound event (the 10 UrbanSound8K classes)"),
        Task("caption", "describe the sound in a few words .", (),
             "a short caption built from the labels and metadata"),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}") from None


def prompts() -> dict[str, str]:
    """{task name: prompt} for every task."""
    return {name: t.prompt for name, t in TASKS.items()}


def fault_answer(label: str, meta: Mapping[str, str]) -> str:
    """``none`` for a normal machine, else the ``fault`` column (one of ``FAULTS``)."""
    if label == "normal":
        return "none"
    if label != "abnormal":
        raise ValueError(f"task 'fault': expected label normal or abnormal, got {label!r}")
    fault = meta.get("fault", "")
    if fault not in FAULTS:
        raise ValueError(f"task 'fault': abnormal clip needs a 'fault' column in {FAULTS}, got {fault!r}")
    return fault


def caption(label: str, meta: Mapping[str, str]) -> str:
    """A short caption from the label and metadata of a factory, RAVDESS or UrbanSound8K clip."""
    machine = meta.get("machine", "")
    if machine:
        if machine not in MACHINES:
            raise ValueError(f"caption: unknown machine {machine!r}; expected one of {MACHINES}")
        if label == "normal":
            return f"a {machine} running normally"
        fault = fault_answer(label, meta)
        return f"a {machine} with {FAULT_DESCRIPTIONS[fault]}"
    if label in EMOTIONS:
        speaker = meta.get("speaker", "")
        who = "someone"
        if speaker.isdigit():  # RAVDESS: odd-numbered actors are male, even-numbered female
            who = "a man" if int(speaker) % 2 else "a woman"
        mood = _EMOTION_WORDS.get(label, label)
        strength = "very " if meta.get("intensity") == "strong" and label != "neutral" else ""
        return f"{who} speaking, sounding {strength}{mood}"
    if label in _EVENT_CAPTIONS:
        return _EVENT_CAPTIONS[label]
    raise ValueError(
        f"caption: cannot caption label {label!r} (expected a factory clip with a 'machine' column, "
        f"an emotion in {EMOTIONS} or an event in {EVENTS})"
    )
