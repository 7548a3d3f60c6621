"""``edge-coat demo``: the scene through the whole service, events over gRPC, the summary.

With a random tiny model the demo's verdict on the anomaly means nothing, so these tests check what
must hold whatever the model says: the summary agrees with the events delivered, every stored event
is delivered and shown, and the exit status follows the documented rule. The test on the embedded
model (skipped until models/coat-tiny exists) checks the verdict itself.
"""

from __future__ import annotations

import io
import json
import re
import urllib.error

import pytest

from edge_coat.cli import main
from edge_coat.service.demo import MACHINE_STREAM, DemoOptions, run_demo


def test_demo_summary_matches_the_events_it_received(tiny_model_dir, tmp_path):
    out = io.StringIO()
    opts = DemoOptions(model=tiny_model_dir, workdir=tmp_path / "demo", scene_s=24.0, onset_s=14.0, enroll_s=10.0,
                       develop_s=2.0, speech=False)
    result = run_demo(opts, out)
    text = out.getvalue()
    assert result.stored == len(result.events)  # every event in the log reached the gRPC subscriber
    assert "every stored event delivered over gRPC" in text and f"{len(result.events)} of {result.stored}" in text
    for e in result.events:  # non-TTY output: one line per event
        assert e.text[:60] in text
    starts = [e for e in result.events if e.stream_id == MACHINE_STREAM and e.phase == "start"]
    # starts split into false alarms (before the onset) and detections (overlapping the fault)
    assert (len(starts) - result.false_alarms > 0) == result.expected_anomaly_seen
    assert result.exit_code == (0 if result.expected_anomaly_seen else 1)
    assert ("MISSED" in text) != result.expected_anomaly_seen
    assert (tmp_path / "demo" / "events.db").is_file()


def test_demo_without_a_model_says_so_and_exits_2(tmp_path, capsys):
    assert main(["demo", "--model", str(tmp_path / "nothing")]) == 2
    assert "pass --model DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_with_the_embedded_model_catches_the_fault(coat_tiny_dir, tmp_path):
    out = io.StringIO()
    result = run_demo(DemoOptions(model=coat_tiny_dir, workdir=tmp_path / "demo"), out)
    assert result.expected_anomaly_seen, out.getvalue()
    assert result.false_alarms == 0, out.getvalue()
    assert result.stored == len(result.events)


def test_demo_console_stays_up_after_the_summary_with_a_read_only_token(tiny_model_dir, tmp_path):
    import re
    import urllib.request

    out = io.StringIO()
    seen = {}

    def operator():  # what a person does while the demo waits: open the console with the printed token
        text = out.getvalue()
        url, token = re.search(r"console: (http://\S+)  read-only token: (\S+)", text).groups()
        assert token not in url  # no secret in the URL
        req = urllib.request.Request(url + "api/streams", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            seen["streams"] = [t["stream_id"] for t in json.loads(r.read())["streams"]]
        req = urllib.request.Request(url + "api/streams/pump-1/enrollment", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as exc:
            seen["enroll"] = exc.code

    opts = DemoOptions(model=tiny_model_dir, workdir=tmp_path / "demo", scene_s=20.0, onset_s=12.0, enroll_s=8.0,
                       develop_s=2.0, speech=False, console=True, console_wait=operator)
    result = run_demo(opts, out)
    assert "summary:" in out.getvalue() and result.stored == len(result.events)
    assert seen == {"streams": [MACHINE_STREAM], "enroll": 403}  # read-only: may look, may not enroll


def test_demo_caller_recording_goes_on_the_desk_stream_with_its_readings(tiny_model_dir, tmp_path):
    """--caller FILE: a user's own recording (here 8 kHz stereo FLAC) is decoded onto the desk stream; the
    summary says whether an emotion alert fired and lists the per-window emotion readings."""
    import numpy as np
    import soundfile as sf

    from edge_coat.service.demo import SPEECH_STREAM

    rng = np.random.default_rng(5)
    t = np.arange(6 * 8000) / 8000
    voice = 0.3 * np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 3 * t)) * t) * (rng.random(t.size) > 0.1)
    call = tmp_path / "call.flac"
    sf.write(str(call), np.stack([voice, 0.5 * voice], axis=1), 8000)
    out = io.StringIO()
    opts = DemoOptions(model=tiny_model_dir, workdir=tmp_path / "demo", scene_s=20.0, onset_s=12.0, enroll_s=7.0,
                       develop_s=2.0, caller=call)
    result = run_demo(opts, out)
    text = out.getvalue()
    desk = [e for e in result.events if e.stream_id == SPEECH_STREAM]
    assert f"your recording {call.name}: emotion alert?" in text
    assert ("fired" in text) == any(e.kind == "emotion" and e.phase == "start" for e in desk)
    assert f"{SPEECH_STREAM} emotion per window" in text
    assert "espeak-ng speaks without emotion" not in text


def test_demo_says_how_much_of_a_quiet_caller_recording_was_scored(tiny_model_dir, tmp_path):
    """Windows under the desk stream's gate never reach the model: the summary says how many were scored and
    why the others were not, instead of a progress bar that stops short. The call: espeak-ng speech at a normal
    level, then the same speech 60 dB down."""
    import shutil

    import numpy as np
    import soundfile as sf

    from edge_coat.service.demo import synthesize_speech

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh installs it)")
    speech, _ = sf.read(str(synthesize_speech(tmp_path)), dtype="float32")
    loud = speech[: 8 * 16000]
    call = tmp_path / "quiet.wav"
    sf.write(str(call), np.concatenate([loud, 1e-3 * loud]), 16000)  # 16 s
    out = io.StringIO()
    opts = DemoOptions(model=tiny_model_dir, workdir=tmp_path / "demo", scene_s=20.0, onset_s=12.0, enroll_s=7.0,
                       develop_s=2.0, caller=call)
    run_demo(opts, out)
    line = next(x for x in out.getvalue().splitlines() if "windows of your recording scored" in x)
    scored, expected = (int(v) for v in re.search(r"(\d+) of (\d+):", line).groups())
    assert expected == 15 and 0 < scored <= 8  # 2 s windows every 1 s over 16 s; none wholly in the quiet 8 s
    assert "-50 dBFS" in line and "partly" in line


def test_demo_caller_errors_are_one_line(tmp_path, capsys, tiny_model_dir):
    (tmp_path / "junk.wav").write_bytes(b"RIFF not audio at all")
    assert main(["demo", "--model", str(tiny_model_dir), "--caller", str(tmp_path / "junk.wav"),
                 "--workdir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--caller" in err and "junk.wav" in err and "Traceback" not in err
    assert main(["demo", "--model", str(tiny_model_dir), "--caller", str(tmp_path / "absent.wav")]) == 2
    assert "no such file" in capsys.readouterr().err
