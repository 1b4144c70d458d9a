"""`petdiff simulate`: pair files written whole, the output path and options checked before any pair is simulated."""

from __future__ import annotations

import pytest

from petdiff.cli import main
from petdiff.data.pair_file import PairFileDataset


def test_simulate_command_writes_readable_pairs(tmp_path, capsys):
    out = tmp_path / "pairs.npz"
    assert main(["simulate", "--n", "5", "--resolution", "32", "--n-iter", "3", "--batch", "2", "--out", str(out)]) == 0
    ds = PairFileDataset(out)
    assert len(ds) == 5 and ds.meta["n_iter"] == 3 and ds.meta["phantoms"] == "procedural"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.npz"]  # no staging folder left behind
    assert main(["simulate", "--n", "5", "--phantoms", str(tmp_path / "missing.npz"), "--out", str(out)]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_simulate_command_checks_out_before_simulating(tmp_path, capsys, monkeypatch):
    from petdiff.commands import simulate

    monkeypatch.setattr(simulate, "write_pairs", lambda *a, **k: pytest.fail("simulation started"))
    assert main(["simulate", "--n", "5", "--resolution", "32", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"petdiff simulate: --out: expected a file name to write, found an existing folder {tmp_path}\n"
    (tmp_path / "file").write_text("x")
    assert main(["simulate", "--n", "5", "--resolution", "32", "--out", str(tmp_path / "file" / "p.npz")]) == 2
    assert "--out: expected a path whose parent folders can be created, found a file" in capsys.readouterr().err
    assert main(["simulate", "--n", "5", "--resolution", "32", "--n-iter", "0", "--out", str(tmp_path / "p.npz")]) == 2
    assert "--n-iter: expected at least 1 MLEM iteration, found 0" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_simulate_refuses_a_wrong_suffix_before_simulating(tmp_path, capsys, monkeypatch):
    from petdiff.commands import simulate

    monkeypatch.setattr(simulate, "write_pairs", lambda *a, **k: pytest.fail("simulation started"))
    assert main(["simulate", "--n", "2", "--resolution", "16", "--out", str(tmp_path / "pairs.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out: expected a pair file name ending in .npz" in err and "pairs.nii.gz" in err
    assert list(tmp_path.iterdir()) == []


def test_simulate_mixed_phantoms_with_random_contrast(tmp_path):
    out = tmp_path / "mixed.npz"
    assert main(["simulate", "--phantoms", "mixed", "--n", "6", "--resolution", "32", "--n-iter", "3", "--alpha", "10",
                 "--random-contrast", "0.5", "--counts", "1e5:1e6", "--fraction", "0.1:0.5", "--out", str(out)]) == 0
    ds = PairFileDataset(out)
    assert ds.meta["phantoms"] == "mixed" and ds.meta["random_contrast"] == 0.5 and len(ds) == 6
    item = ds[0]
    assert item["truth"].shape == (1, 32, 32) and 1e5 <= float(item["counts"]) <= 1e6


def test_simulate_scans_writes_2p5d_patches_with_their_density_and_recon_ranges(tmp_path):
    import torch

    from petdiff.data.normalization import Normalizer
    from petdiff.models.dose import peak_density

    out = tmp_path / "scans.npz"
    assert main(["simulate", "--phantoms", "scans", "--n", "6", "--batch", "6", "--seed", "3", "--out", str(out)]) == 0
    ds = PairFileDataset(out)
    assert len(ds) == 6 and ds.meta["phantoms"] == "scans" and ds.meta["context"] == 1
    assert ds.meta["simulation"]["pixel_size_mm"] == [1.5, 4.5]
    item = ds[0]
    assert item["low_dose"].shape == (3, 64, 64) and item["truth"].shape == (1, 64, 64)
    assert 1.5 <= float(item["pixel_size"]) <= 4.5 and 0.02 <= float(item["fraction"]) <= 0.6
    # The stored density is the peak low-dose counts per pixel of the stored (un-normalised) patch.
    low = Normalizer().invert(item["low_dose"][None], (item["scale"] * item["fraction"]).reshape(1))
    assert float(item["density"]) == pytest.approx(float(peak_density(low)), rel=1e-4)
    assert torch.isfinite(item["truth"]).all() and float(item["truth"].min()) >= -1.0 - 1e-6
