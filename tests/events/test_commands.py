"""edge-coat events / status / certs against an in-process server."""

from __future__ import annotations

import json

from edge_coat.cli import main

from .conftest import ADMIN, AGENT, record


def test_events_command_prints_json_and_filters(make_server, writer, capsys):
    server = make_server()
    writer.append_many([record("press-1", n=0), record("call-1", "emotion", n=1), record("press-1", score=0.2, n=2)])
    rc = main(["events", "--server", f"127.0.0.1:{server.port}", "--insecure", "--token", ADMIN, "--from", "0",
               "--stream", "press-1", "--min-score", "0.5", "--json"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 0 and [(e["id"], e["stream_id"]) for e in lines] == [(1, "press-1")]
    assert lines[0]["evidence"]["model_name"] == "coat-tiny"
    rc = main(["events", "--server", f"127.0.0.1:{server.port}", "--insecure", "--token", AGENT,
               "--stream", "press-1", "--from", "0"])
    assert rc == 1 and "PERMISSION_DENIED" in capsys.readouterr().err


def test_status_command_and_certs(make_server, tmp_path, capsys):
    server = make_server()
    rc = main(["status", "--server", f"127.0.0.1:{server.port}", "--insecure", "--token", ADMIN])
    out = capsys.readouterr().out
    assert rc == 0 and "no streams reported" in out and "0 subscriber" in out
    assert main(["certs", "--out", str(tmp_path / "pki"), "--host", "events.local"]) == 0
    assert {p.name for p in (tmp_path / "pki").iterdir()} >= {"ca.pem", "server.pem", "server-key.pem", "client.pem"}
