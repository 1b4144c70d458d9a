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


def test_simulate_refuses_a_wrong_suffix_before_simulating(tmp_path, capsys, monkeypatch):
    from petdiff.commands import simulate

    monkeypatch.setattr(simulate, "write_pairs", lambda *a, **k: pytest.fail("simulation started"))
    assert main(["simulate", "--n", "2", "--resolution", "16", "--out", str(tmp_path / "pairs.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out: expected a pair file name ending in .npz" in err and "pairs.nii.gz" in err
    assert list(tmp_path.iterdir()) == []
