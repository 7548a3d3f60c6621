"""The short text every event carries, built from its evidence."""

from edge_coat.detectors.evidence import describe_readings


def test_pitch_is_reported_in_hz_only_when_voiced():
    voiced = describe_readings({"readings": {"pitch_hz": 212.4, "loudness_dbfs": -23.2}})
    assert voiced.startswith("pitch 212 Hz") and "-23 dBFS" in voiced
    unvoiced = describe_readings({"readings": {"pitch_hz": 0.0, "loudness_dbfs": -23.2}})
    assert "Hz" not in unvoiced and unvoiced.startswith("unvoiced")


def test_gaps_and_tags_are_named():
    text = describe_readings({"readings": {}, "tags": [["Engine", 0.7], ["Hiss", 0.2]], "gap_seconds": 0.5})
    assert "tags: Engine, Hiss" in text and "0.5 s of audio missing" in text
