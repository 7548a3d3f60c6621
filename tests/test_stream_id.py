"""The one stream id rule (messages.StreamId), checked where an id enters: config keys and fields,
the wire, the sender, capture threads, enrollment requests; and the bug it fixes (a stream named
``-pump`` used to pass capture and the wire and then have every window refused by the detectors)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge_coat.capture.config import SourceConfig
from edge_coat.config import ServiceConfig
from edge_coat.messages import STREAM_ID_RULE, check_stream_id, is_stream_id
from edge_coat.transport import wire
from edge_coat.worker.config import WorkerConfig

GOOD = ["press-3", "call-8812", "a", "A.b_c:d-e", "9" * 128, "0lead"]
BAD = ["", "-pump", ".hidden", "..", "../x", "a/b", "bad id", "pump\n", "x" * 129, "ümlaut", None, 3]


@pytest.mark.parametrize("sid", GOOD)
def test_good_ids_pass(sid):
    assert is_stream_id(sid) and check_stream_id(sid) == sid


@pytest.mark.parametrize("sid", BAD)
def test_bad_ids_are_refused_with_the_rule(sid):
    assert not is_stream_id(sid)
    with pytest.raises(ValueError, match="starting with a letter or digit"):
        check_stream_id(sid)


def test_config_fields_and_keys_use_the_rule():
    with pytest.raises(ValidationError, match="starting with a letter or digit"):
        SourceConfig(uri="gen:sine", stream_id="-pump")
    with pytest.raises(ValidationError, match="starting with a letter or digit"):
        WorkerConfig(receiver={"bind": "tcp://127.0.0.1:0"}, streams={"../x": {}})
    with pytest.raises(ValidationError, match="starting with a letter or digit"):
        ServiceConfig(enroll_at_start={"../x": {"windows": 8}})
    assert SourceConfig(uri="gen:sine", stream_id="pump-1").stream_id == "pump-1"
    assert list(ServiceConfig(enroll_at_start={"pump-1": {"windows": 8}}).enroll_at_start) == ["pump-1"]


def test_the_wire_refuses_what_the_detectors_would_refuse():
    """The bug: '-pump' passed the wire's looser rule; now the wire and every stage share one rule."""
    samples = np.zeros(160, np.float32)
    ok = wire.encode_audio("pump", 1, 0, 0, 0.0, samples)
    assert wire.decode(ok, 1000).stream_id == "pump"
    for sid in ("-pump", ".pump", "pump\n"):
        with pytest.raises(wire.WireError) as e:
            wire.decode(wire.encode_audio(sid, 1, 0, 0, 0.0, samples), 1000)
        assert e.value.reason == "malformed"


def test_the_rule_is_documented_in_the_proto():
    from pathlib import Path

    proto = (Path(__file__).resolve().parents[1] / "protos/edge_coat/v1/audio.proto").read_text()
    assert STREAM_ID_RULE in proto
