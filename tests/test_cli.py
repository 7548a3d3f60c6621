import subprocess
import sys

from edge_coat.cli import COMMANDS, build_parser, main

CONTRACT = {"run", "capture", "worker", "serve", "events", "demo", "train", "export", "eval"}


def test_help_lists_contract_subcommands():
    help_text = build_parser().format_help()
    for name in CONTRACT:
        assert name in help_text
    assert CONTRACT <= set(COMMANDS)


def test_unbuilt_command_says_so_and_fails(capsys, monkeypatch):
    import edge_coat.cli as cli

    monkeypatch.setattr(cli, "_load", lambda name: None)
    assert main(["demo"]) == 2
    assert "not built yet" in capsys.readouterr().err


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "edge_coat", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "eval" in out.stdout
