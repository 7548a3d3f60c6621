"""CurveZMQ: an allowed client streams; unknown keys are rejected and counted."""

from __future__ import annotations

import shutil

import pytest

from edge_coat.cli import main
from edge_coat.transport.config import CurveConfig
from edge_coat.transport.sender import Sender
from tests.transport.helpers import Collector, make_worker, sender_config, signal, wait_for


@pytest.fixture()
def keys(tmp_path):
    assert main(["keys", "worker", "good", "intruder", "--dir", str(tmp_path / "k")]) == 0
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(tmp_path / "k" / "good.key", allowed)
    return tmp_path / "k", allowed


def test_curve_admits_known_client_and_counts_rejections(keys):
    k, allowed = keys
    got = Collector()
    worker = make_worker(curve=CurveConfig(secret_key_file=k / "worker.key_secret", allowed_clients_dir=allowed),
                         collector=got)
    x = signal(16000, seed=3)
    try:
        good = Sender(sender_config(worker.endpoint, curve=CurveConfig(
            secret_key_file=k / "good.key_secret", server_public_key_file=k / "worker.key"))).start()
        intruder = Sender(sender_config(worker.endpoint, curve=CurveConfig(
            secret_key_file=k / "intruder.key_secret", server_public_key_file=k / "worker.key"))).start()
        # knows the right server key? no: it uses its own public key as the "server" key
        confused = Sender(sender_config(worker.endpoint, curve=CurveConfig(
            secret_key_file=k / "good.key_secret", server_public_key_file=k / "intruder.key"))).start()
        try:
            for s in (good, intruder, confused):
                s.submit("cam-1" if s is good else "evil", x, 1.0, end_of_stream=True)
            assert good.wait_acked(10)
            assert wait_for(lambda: len(got.get("cam-1")) > 0)
            assert wait_for(lambda: worker.stats()["receiver"]["link"].get("zap_denied", 0) >= 1)
            link = worker.stats()["receiver"]["link"]
            assert wait_for(lambda: worker.stats()["receiver"]["link"].get("handshake_failed_protocol", 0)
                            + worker.stats()["receiver"]["link"].get("handshake_failed", 0) >= 1)
            assert link["zap_accepted"] >= 1
            assert not intruder.connected.is_set() and not confused.connected.is_set()
            assert "evil" not in worker.stats()["streams"]
        finally:
            for s in (good, intruder, confused):
                s.close()
    finally:
        worker.close()


def test_keys_command_refuses_to_overwrite(tmp_path, capsys):
    assert main(["keys", "w", "--dir", str(tmp_path)]) == 0
    assert main(["keys", "w", "--dir", str(tmp_path)]) == 1
    assert "exists; use --force" in capsys.readouterr().err
    with pytest.raises(ValueError, match="public-only"):
        from edge_coat.transport.auth import load_keypair
        load_keypair(tmp_path / "w.key")


def test_an_open_bind_logs_a_warning_at_start(caplog):
    """Issue 15, defect 12: a non-loopback bind without CurveZMQ needs `insecure` and says so at start."""
    import logging

    from edge_coat.transport.config import ReceiverConfig
    from edge_coat.transport.receiver import Receiver

    caplog.set_level(logging.WARNING, logger="edge_coat.transport.receiver")
    receiver = Receiver(ReceiverConfig(bind="tcp://0.0.0.0:0", insecure=True))
    try:
        assert any("INSECURE" in r.getMessage() for r in caplog.records)
    finally:
        receiver.close()
    caplog.clear()
    receiver = Receiver(ReceiverConfig(bind="tcp://127.0.0.1:0"))
    receiver.close()
    assert not any("INSECURE" in r.getMessage() for r in caplog.records)
