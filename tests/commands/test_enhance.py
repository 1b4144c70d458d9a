from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from petdiff.commands import enhance as enhance_cmd
from petdiff.commands import enhance_outputs
from petdiff.commands.panel import panel_slices
from petdiff.inference import model as model_module
from petdiff.physics import Projector, poisson_sinogram
from petdiff.recon import reconstruct
from tests.conftest import RES, save_pair, save_tiny
from tests.io.pet_series import sample_values, write_pet_series


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return save_pair(tmp_path_factory.mktemp("pair"))[1]


@pytest.fixture
def net(tmp_path):
    return save_tiny(tmp_path / "net.safetensors")


def slices(n: int = 1, seed: int = 0, shape: tuple[int, int] = (RES, RES)) -> np.ndarray:
    g = np.random.default_rng(seed)
    return (10 + 5 * g.random((n, *shape))).astype(np.float32)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = enhance_cmd.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_dicom_values(folder) -> tuple[np.ndarray, list]:
    """(N, H, W) rescaled values and the datasets of a written series, in instance order."""
    import pydicom

    datasets = sorted((pydicom.dcmread(p) for p in folder.iterdir()), key=lambda ds: int(ds.InstanceNumber))
    values = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets])
    return values, datasets


def test_dicom_folder_to_dicom_and_nifti_in_suv(tmp_path, pair, capsys):
    values = sample_values()  # (4, 6, 5) Bq/mL
    write_pet_series(tmp_path / "pet", values, pixel_spacing=(4.0, 4.0))  # the model's pixel size: no resampling
    out = tmp_path / "out"
    code, stdout, err = run(capsys, tmp_path / "pet", "-o", out, "--network", pair, "--method", "mean",
                            "--units", "SUV", "--counts-per-unit", "0.05")
    assert code == 0, err
    assert "SUVbw factor" in err  # the reader's notes are printed
    # SUVbw by hand from the tags: 70 kg, 370 MBq, T½ 6586.2 s, injection 10:00:00, series 11:00:00, START
    suv = values * 70_000 / (370e6 * 2 ** (-3600 / 6586.2))
    case = out / "pet"
    assert sorted(p.name for p in case.iterdir()) == ["enhanced.npz", "enhanced.png", "mean.nii.gz", "mean_dicom",
                                                      "regression.nii.gz"]
    written, datasets = read_dicom_values(case / "mean_dicom")
    # the untrained regression is the identity: the output is the input's SUV (no ×1/f for a concentration)
    np.testing.assert_allclose(written, suv, rtol=2e-3)
    assert all(ds.Units == "GML" and ds.ImageType[0] == "DERIVED" for ds in datasets)
    assert datasets[0].SeriesDescription.startswith("petdiff posterior mean")
    assert [float(v) for v in datasets[1].ImagePositionPatient] == [-10.0, -20.0, -26.0]
    nifti = nib.load(case / "mean.nii.gz")
    assert nifti.shape == (5, 6, 4)  # (columns, rows, slices)
    np.testing.assert_allclose(nifti.get_fdata().transpose(2, 1, 0), suv, rtol=2e-3)
    np.testing.assert_allclose(nifti.affine[:3, :3], np.diag([-4.0, -4.0, 4.0]))  # LPS → RAS
    summary = json.loads(stdout)
    assert summary["failed"] == 0 and summary["cases"][0]["units"] == "SUV"


def test_dicom_posterior_writes_std_series(tmp_path, pair, capsys):
    write_pet_series(tmp_path / "pet", sample_values(), pixel_spacing=(2.0, 2.0))
    code, _, err = run(capsys, tmp_path / "pet", "-o", tmp_path / "out", "--network", pair, "--samples", 2,
                       "--counts-per-unit", "1")
    assert code == 0, err
    mean, _ = read_dicom_values(tmp_path / "out" / "pet" / "mean_dicom")
    std, ds = read_dicom_values(tmp_path / "out" / "pet" / "std_dicom")
    assert mean.shape == std.shape == (4, 6, 5) and ds[0].Units == "BQML"
    assert "std" in ds[0].SeriesDescription


def test_2mm_128_nifti_volume_comes_back_on_its_grid(tmp_path, pair, capsys):
    volume = slices(3, shape=(128, 128))
    affine = np.array([[-2.0, 0, 0, 128], [0, 2.0, 0, -128], [0, 0, 3, 5], [0, 0, 0, 1]])  # LAS
    image = nib.Nifti1Image(volume.transpose(2, 1, 0).copy(), affine)
    image.header["descrip"] = b"low dose"
    nib.save(image, tmp_path / "brain.nii.gz")
    out = tmp_path / "out"
    code, _, err = run(capsys, tmp_path / "brain.nii.gz", "-o", out, "--network", pair, "--samples", 2,
                       "--keep-samples")
    assert code == 0, err
    assert "tiles" in err  # plain progress lines off a terminal
    for name in ("mean.nii.gz", "std.nii.gz", "regression.nii.gz"):
        written = nib.load(out / "brain" / name)
        assert written.shape == (128, 128, 3)
        np.testing.assert_array_equal(written.affine, affine)  # same voxel order and orientation (no RAS flip)
    with np.load(out / "brain" / "enhanced.npz") as f:
        assert f["mean"].shape == f["std"].shape == f["input"].shape == (3, 1, 128, 128)
        assert f["samples"].shape == (2, 3, 1, 128, 128) and f["seeds"].tolist() == [0, 1]
        np.testing.assert_allclose(f["samples"].mean(0), f["mean"], rtol=1e-4, atol=1e-4)
        meta = json.loads(str(f["meta"]))
        # counts at full dose: the regression keeps the input's totals / f
        np.testing.assert_allclose(f["regression"].sum(), f["input"].sum() / 0.25, rtol=1e-3)
    assert meta["units"] == "counts" and meta["model_grid"] == [64, 64] and meta["tiles_per_slice"] == 49
    assert meta["settings"]["sampler"] == "dpmpp_2m" and meta["settings"]["options"]["num_steps"] == 2


def test_folder_with_a_corrupt_case(tmp_path, pair, capsys):
    cases = tmp_path / "cases"
    cases.mkdir()
    np.save(cases / "a.npy", slices(2))
    (cases / "b.nii.gz").write_bytes(b"not a nifti file")
    write_pet_series(cases / "c", sample_values(), pixel_spacing=(4.0, 4.0))
    (cases / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, cases, "-o", out, "--network", pair, "--method", "mean")
    assert code == 2
    assert "b.nii.gz" in err and "1 of 3 case(s) failed (b)" in err and "Traceback" not in err
    assert "notes.txt: ignored" in err
    with open(out / "summary.csv", newline="") as f:
        rows = {row["case"]: row for row in csv.DictReader(f)}
    assert {k: r["status"] for k, r in rows.items()} == {"a": "ok", "b": "failed", "c": "ok"}
    assert "NIfTI" in rows["b"]["message"] and rows["a"]["shape"] == f"2x{RES}x{RES}"
    assert (out / "a" / "mean.nii.gz").is_file() and (out / "c" / "mean_dicom").is_dir()
    assert not (out / "b").exists()
    assert json.loads(stdout)["failed"] == 1
    # a second run into the same folder: its own case folder, the summary keeps the earlier cases
    np.save(tmp_path / "d.npy", slices(1))
    code, _, err = run(capsys, tmp_path / "d.npy", "-o", out, "--network", pair, "--method", "mean")
    assert code == 0, err
    with open(out / "summary.csv", newline="") as f:
        assert [row["case"] for row in csv.DictReader(f)] == ["a", "b", "c", "d"]
    assert (out / "a" / "mean.nii.gz").is_file() and (out / "d" / "mean.nii.gz").is_file()


def test_denoiser_method_keeps_old_snapshots_working(tmp_path, net, capsys):
    np.save(tmp_path / "scan.npy", slices(1)[0])
    out = tmp_path / "out"
    code, _, err = run(capsys, tmp_path / "scan.npy", "--network", net, "--method", "denoiser", "--samples", 3,
                            "--seeds", "5-7", "-o", out)
    assert code == 0, err
    with np.load(out / "scan" / "enhanced.npz") as f:
        assert f["mean"].shape == f["std"].shape == (1, 1, RES, RES) and f["seeds"].tolist() == [5, 6, 7]
        assert "regression" not in f
        settings = json.loads(str(f["meta"]))["settings"]
        assert settings["options"]["num_steps"] == 3  # the snapshot's section
        assert settings["antithetic"] is False  # the single-network path draws independent samples
    assert sorted(p.name for p in (out / "scan").iterdir()) == ["enhanced.npz", "enhanced.png", "mean.nii.gz",
                                                                "std.nii.gz"]
    # the pair-only methods refuse an old snapshot with a hint
    code, _, err = run(capsys, tmp_path / "scan.npy", "--network", net, "-o", out)
    assert code == 2 and "--method denoiser" in err


def test_sinogram_input_is_reconstructed_first(tmp_path, net, capsys):
    sino = poisson_sinogram(torch.from_numpy(slices(2))[:, None], Projector(RES), counts=2e4,
                            generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "sino.npy", sino.numpy())
    code, _, err = run(capsys, tmp_path / "sino.npy", "--network", net, "--method", "denoiser", "--samples", 2,
                       "--sinogram", "-o", tmp_path / "o")
    assert code == 0, err
    with np.load(tmp_path / "o" / "sino" / "enhanced.npz") as f:
        assert json.loads(str(f["meta"]))["kind"] == "sinogram"
        np.testing.assert_allclose(f["input"], reconstruct(sino, RES, n_iter=5).numpy(), rtol=1e-5)
    np.save(tmp_path / "bad.npy", np.ones((2, 30, RES), np.float32))
    code, _, err = run(capsys, tmp_path / "bad.npy", "--network", net, "--method", "denoiser", "--sinogram",
                       "-o", tmp_path / "o")
    assert code == 2 and "(32, 16)" in err


@pytest.mark.parametrize(
    ("array", "word"),
    [
        (np.full((RES, RES), np.nan, np.float32), "finite"),
        (-np.ones((RES, RES), np.float32), "non-negative"),
        (np.ones((2, 2, RES, RES), np.float32), "shape"),
    ],
)
def test_bad_values_fail_the_case_naming_the_file(tmp_path, pair, capsys, array, word):
    np.save(tmp_path / "scan.npy", array)
    code, _, err = run(capsys, tmp_path / "scan.npy", "--network", pair, "-o", tmp_path / "o")
    assert code == 2 and "scan.npy" in err and word in err and "Traceback" not in err


def test_bad_arguments_exit_2(tmp_path, pair, capsys):
    np.save(tmp_path / "scan.npy", slices(1))
    for extra, word in ((["--samples", "0"], "--samples"), (["--fraction", "1.5"], "fraction"),
                        (["--sampler", "magic"], "sampler"), (["--network", tmp_path / "no.safetensors"], "not found"),
                        (["--method", "mean", "--samples", "2"], "--method mean"),
                        (["--units", "kBq"], "invalid choice")):
        code, _, err = run(capsys, tmp_path / "scan.npy", "--network", pair, "-o", tmp_path / "o", *extra)
        assert code == 2 and word in err, (extra, err)
    code, _, _ = run(capsys, "--no-such-option")
    assert code == 2
    code, stdout, _ = run(capsys, "--help")
    text = " ".join(stdout.split())
    assert code == 0 and "--keep-samples" in text and "(default: posterior)" in text
    assert "(default: 0.25)" in text and "(default: None)" not in text


def test_missing_default_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(model_module, "default_weights_dir", lambda: tmp_path / "weights")
    np.save(tmp_path / "scan.npy", slices(1))
    code, _, err = run(capsys, tmp_path / "scan.npy", "-o", tmp_path / "o")
    assert code == 2 and str(tmp_path / "weights") in err and "--network" in err


def test_out_is_checked_before_any_work(tmp_path, pair, capsys, monkeypatch):
    monkeypatch.setattr(enhance_cmd, "load_enhancer", lambda *a, **k: pytest.fail("network loaded"))
    np.save(tmp_path / "scan.npy", slices(1))
    (tmp_path / "taken").write_text("a file")
    code, _, err = run(capsys, tmp_path / "scan.npy", "--network", pair, "--out", tmp_path / "taken")
    assert code == 2 and err == (
        f"petdiff enhance: --out: expected an output folder, found an existing file {tmp_path / 'taken'}\n"
    )
    code, _, err = run(capsys, tmp_path / "scan.npy", "--network", pair, "--sinogram", "--n-iter", 0)
    assert code == 2 and err.count("\n") == 1 and "--n-iter: expected an integer >= 1" in err


def test_failure_while_writing_leaves_the_previous_outputs_intact(tmp_path, pair, capsys, monkeypatch):
    np.save(tmp_path / "scan.npy", slices(1))
    out = tmp_path / "o"
    code, _, _ = run(capsys, tmp_path / "scan.npy", "--network", pair, "--samples", 2, "--out", out)
    assert code == 0
    case = out / "scan"
    before = {p.name: p.read_bytes() for p in case.iterdir()}
    assert sorted(before) == ["enhanced.npz", "enhanced.png", "mean.nii.gz", "regression.nii.gz", "std.nii.gz"]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(enhance_outputs, "enhancement_panel", broken)  # the last file fails
    code, _, err = run(capsys, tmp_path / "scan.npy", "--network", pair, "--samples", 3, "--seeds", "9-11",
                       "--out", out)
    assert code == 2 and "disk full" in err
    assert {p.name: p.read_bytes() for p in case.iterdir()} == before
    monkeypatch.undo()
    # a run without std replaces the whole set: the earlier std.nii.gz does not stay behind
    code, _, _ = run(capsys, tmp_path / "scan.npy", "--network", pair, "--method", "mean", "--out", out)
    assert code == 0
    assert sorted(p.name for p in case.iterdir()) == ["enhanced.npz", "enhanced.png", "mean.nii.gz",
                                                      "regression.nii.gz"]


def test_panel_slices():
    assert panel_slices(1) == [0]
    assert panel_slices(9, count=1) == [4]
    assert panel_slices(9) == [1, 4, 7]
    nonzero = np.array([False, False, True, True, False])
    assert panel_slices(5, nonzero, count=1) == [3]
    assert panel_slices(5, np.zeros(5, bool), count=2) == [1, 3]
