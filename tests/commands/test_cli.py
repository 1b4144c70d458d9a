from __future__ import annotations

import pytest

from petdiff.cli import COMMANDS, main


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: petdiff COMMAND" in captured.err and "expected a command" in captured.err
    assert main(["--help"]) == 0 and "usage: petdiff COMMAND" in capsys.readouterr().out
    assert main(["nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["enhance", "simulate", "evaluate", "demo"])
def test_help_shows_defaults(name, capsys):
    assert name in COMMANDS
    assert main([name, "--help"]) in (0, None)
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: " in text and "(default: None)" not in text
