import subprocess
import sys

from edge_coat.cli import COMMANDS, build_parser, main

CONTRACT = {"run", "capture", "worker", "serve", "events", "demo", "train", "export", "eval"}


def test_help_lists_contract_subcommands():
    help_text = build_parser().format_help()
    for name in CONTRACT:
        assert name in help_text
    assert CONTRACT <= set(COMMANDS)


def test_every_command_module_has_its_help_and_arguments():
    import importlib

    for name in COMMANDS:
        module = importlib.import_module(f"edge_coat.commands.{name}")
        assert module.HELP and callable(module.add_arguments) and callable(module.run), name


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "edge_coat", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "eval" in out.stdout
