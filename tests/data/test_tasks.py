"""Tasks: prompts, candidates and the answer text a labelled clip gets."""

from __future__ import annotations

import pytest

from edge_coat.data.factory import FAULTS, MACHINES, faults_for
from edge_coat.data.tasks import EMOTIONS, EVENTS, TASKS, caption, get_task, prompts


def test_classification_tasks_and_their_candidates():
    assert set(get_task("emotion").labels) == {
        "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
    assert get_task("anomaly").labels == ("normal", "abnormal")
    assert get_task("fault").labels == ("none",) + FAULTS
    assert len(get_task("events").labels) == 10 and "dog_bark" in get_task("events").labels
    assert get_task("caption").free_text and not get_task("emotion").free_text
    assert set(prompts()) == set(TASKS) and all(p.strip() for p in prompts().values())
    assert len(set(prompts().values())) == len(TASKS)  # each task asks its own question


def test_answers_are_candidates_and_bad_labels_are_refused():
    assert get_task("emotion").answer("angry") == "angry"
    assert get_task("events").answer("siren") == "siren"
    assert get_task("anomaly").answer("abnormal", {"fault": "squeal"}) == "abnormal"
    assert get_task("fault").answer("abnormal", {"fault": "squeal"}) == "squeal"
    assert get_task("fault").answer("normal", {"fault": "none"}) == "none"
    with pytest.raises(ValueError, match="'furious' is not a candidate"):
        get_task("emotion").answer("furious")
    with pytest.raises(ValueError, match="needs a 'fault' column"):
        get_task("fault").answer("abnormal", {})
    with pytest.raises(ValueError, match="unknown task 'mood'"):
        get_task("mood")


def test_captions_from_labels_and_metadata():
    cap = get_task("caption").answer
    assert cap("abnormal", {"machine": "pump", "fault": "cavitation"}) == "a pump with cavitation bursts"
    assert cap("normal", {"machine": "fan", "fault": "none"}) == "a fan running normally"
    assert cap("angry", {"speaker": "03", "intensity": "strong"}) == "a man speaking, sounding very angry"
    assert cap("disgust", {"speaker": "08", "intensity": "normal"}) == "a woman speaking, sounding disgusted"
    assert cap("dog_bark", {}) == "a dog barking"
    with pytest.raises(ValueError, match="cannot caption"):
        caption("mystery", {})
    # every label any dataset here can carry has a caption, and they are distinct
    texts = {cap(e, {}) for e in EMOTIONS} | {cap(e, {}) for e in EVENTS}
    texts |= {cap("abnormal", {"machine": m, "fault": f}) for m in MACHINES for f in faults_for(m)}
    assert len(texts) == len(EMOTIONS) + len(EVENTS) + sum(len(faults_for(m)) for m in MACHINES)
