from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from petdiff.commands import enhance as enhance_cmd
from petdiff.inference import enhance, load_model, reconstruct
from petdiff.inference import model as model_module
from petdiff.inference.panel import panel_slices
from petdiff.phantoms import load_volume
from petdiff.physics import Projector, poisson_sinogram
from tests.conftest import RES, save_tiny


@pytest.fixture
def net(tmp_path):
    return save_tiny(tmp_path / "net.safetensors")


def slices(n: int = 1, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    return (10 + 5 * g.random((n, RES, RES))).astype(np.float32)


def display(path) -> np.ndarray:
    """NIfTI data as display slices (N, H, W) (phantoms.volumes' orientation), negative values allowed."""
    data = nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float32)
    return np.ascontiguousarray(data[::-1, ::-1, :].transpose(2, 1, 0))


def run(tmp_path, capsys, *argv) -> tuple[int, str, str]:
    code = enhance_cmd.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_single_npy_slice(tmp_path, net, capsys):
    np.save(tmp_path / "scan.npy", slices(1)[0])
    out = tmp_path / "out"
    code, stdout, err = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, "--samples", 3, "--out", out)
    assert code == 0, err
    assert json.loads(stdout)["slices"] == 1
    with np.load(out / "enhanced.npz") as f:
        assert f["mean"].shape == f["std"].shape == f["input"].shape == (1, 1, RES, RES)
        assert f["seeds"].tolist() == [0, 1, 2] and "samples" not in f
        meta = json.loads(str(f["meta"]))
        mean = f["mean"]
    assert meta["kind"] == "image" and meta["sampling"]["num_steps"] == 3  # the snapshot's sampling section
    assert (out / "enhanced.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nifti = nib.load(out / "mean.nii.gz")
    np.testing.assert_array_equal(nifti.affine, np.eye(4))
    np.testing.assert_allclose(display(out / "mean.nii.gz"), mean[:, 0], rtol=1e-6)
    assert sorted(p.name for p in out.iterdir()) == ["enhanced.npz", "enhanced.png", "mean.nii.gz", "std.nii.gz"]
    # the command is enhance() on the file's values, with seeds SEED..SEED+K−1
    expected = enhance(load_model(net, "cpu"), torch.from_numpy(slices(1))[:, None], samples=3)
    np.testing.assert_allclose(mean, expected.mean.numpy(), rtol=1e-5, atol=1e-5)


def test_nifti_volume_keeps_its_affine(tmp_path, net, capsys):
    volume = slices(3)
    volume[1] = 0  # an empty slice is skipped with a warning
    affine = np.array([[-2.0, 0, 0, 30], [0, 2.5, 0, -20], [0, 0, 3, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0).copy(), affine), tmp_path / "scan.nii.gz")
    out = tmp_path / "out"
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.nii.gz", "--network", net, "--samples", 2, "--out", out)
    assert code == 0, err
    assert "warning" in err and "[1]" in err
    for name in ("mean.nii.gz", "std.nii.gz"):
        written = nib.load(out / name)
        np.testing.assert_allclose(written.affine, nib.as_closest_canonical(nib.load(tmp_path / "scan.nii.gz")).affine)
    with np.load(out / "enhanced.npz") as f:
        np.testing.assert_array_equal(f["input"][:, 0], load_volume(tmp_path / "scan.nii.gz").data)
        np.testing.assert_allclose(display(out / "mean.nii.gz"), f["mean"][:, 0], rtol=1e-6)
        assert float(np.abs(f["mean"][1]).max()) == 0 and float(np.abs(f["mean"][0]).max()) > 0


def test_npz_key_low_dose_keep_samples_and_seed(tmp_path, net, capsys):
    np.savez(tmp_path / "scan.npz", low_dose=slices(2), other=np.zeros(3))
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.npz", "--network", net, "--samples", 2, "--keep-samples",
                       "--seed", 5, "--batch-size", 1, "--out", tmp_path / "a")
    assert code == 0, err
    with np.load(tmp_path / "a" / "enhanced.npz") as f:
        assert f["samples"].shape == (2, 2, 1, RES, RES) and f["seeds"].tolist() == [5, 6]
        np.testing.assert_allclose(f["samples"].mean(0), f["mean"], rtol=1e-4, atol=1e-4)
        first = f["mean"]
    code, _, _ = run(tmp_path, capsys, tmp_path / "scan.npz", "--network", net, "--samples", 2, "--seed", 5,
                     "--out", tmp_path / "b")
    assert code == 0
    np.testing.assert_allclose(np.load(tmp_path / "b" / "enhanced.npz")["mean"], first, rtol=1e-5, atol=1e-5)


def test_single_sample_has_no_std(tmp_path, net, capsys):
    np.save(tmp_path / "scan.npy", slices(1))
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, "--samples", 1, "--out",
                       tmp_path / "o")
    assert code == 0, err
    assert "std" not in np.load(tmp_path / "o" / "enhanced.npz")
    assert not (tmp_path / "o" / "std.nii.gz").exists()


def test_sinogram_input_is_reconstructed_first(tmp_path, net, capsys):
    projector = Projector(RES)
    sino = poisson_sinogram(torch.from_numpy(slices(2))[:, None], projector, counts=2e4,
                            generator=torch.Generator().manual_seed(0))
    assert sino.shape[1:] == (2 * RES, RES)
    np.save(tmp_path / "sino.npy", sino.numpy())
    code, _, err = run(tmp_path, capsys, tmp_path / "sino.npy", "--network", net, "--samples", 2, "--out",
                       tmp_path / "o")
    assert code == 0, err
    with np.load(tmp_path / "o" / "enhanced.npz") as f:
        assert json.loads(str(f["meta"]))["kind"] == "sinogram"
        recon = reconstruct(load_model(net, "cpu"), sino)  # n_iter from the sidecar's data section
        np.testing.assert_allclose(f["input"], recon.numpy(), rtol=1e-5)
    # --sinogram insists on the geometry's shape
    np.save(tmp_path / "bad.npy", np.ones((2, 30, RES), np.float32))
    code, _, err = run(tmp_path, capsys, tmp_path / "bad.npy", "--network", net, "--sinogram")
    assert code == 2 and "(32, 16)" in err


def test_resolution_mismatch_and_resample(tmp_path, net, capsys):
    np.save(tmp_path / "big.npy", np.ones((2, 2 * RES, 2 * RES), np.float32) * 7)
    code, _, err = run(tmp_path, capsys, tmp_path / "big.npy", "--network", net, "--out", tmp_path / "o")
    assert code == 2 and "big.npy" in err and "--resample" in err and f"{RES}×{RES}" in err
    assert not (tmp_path / "o").exists()
    code, _, err = run(tmp_path, capsys, tmp_path / "big.npy", "--network", net, "--resample", "--samples", 2,
                       "--out", tmp_path / "o")
    assert code == 0, err
    with np.load(tmp_path / "o" / "enhanced.npz") as f:
        assert f["mean"].shape == (2, 1, RES, RES)
        np.testing.assert_allclose(f["input"], 7.0)  # area resampling keeps the values


@pytest.mark.parametrize(
    ("array", "word"),
    [
        (np.full((RES, RES), np.nan, np.float32), "finite"),
        (-np.ones((RES, RES), np.float32), "non-negative"),
        (np.ones((2, 2, RES, RES), np.float32), "shape"),
    ],
)
def test_bad_values_exit_2_naming_the_file(tmp_path, net, capsys, array, word):
    np.save(tmp_path / "scan.npy", array)
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, "--out", tmp_path / "o")
    assert code == 2 and "scan.npy" in err and word in err and "Traceback" not in err


def test_bad_arguments_exit_2(tmp_path, net, capsys):
    np.save(tmp_path / "scan.npy", slices(1))
    for extra, word in ((["--samples", "0"], "--samples"), (["--fraction", "1.5"], "fraction"),
                        (["--sampler", "magic"], "sampler"), (["--network", tmp_path / "no.safetensors"], "not found"),
                        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--samples", "0"], "device"
                         if not torch.cuda.is_available() else "--samples")):
        code, _, err = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, *extra)
        assert code == 2 and word in err, (extra, err)
    code, _, _ = run(tmp_path, capsys, "--no-such-option")
    assert code == 2
    code, stdout, _ = run(tmp_path, capsys, "--help")
    assert code == 0 and "--keep-samples" in stdout


def test_missing_default_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(model_module, "default_weights_dir", lambda: tmp_path / "weights")
    np.save(tmp_path / "scan.npy", slices(1))
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.npy")
    assert code == 2 and str(tmp_path / "weights") in err and "--network" in err


def test_unconditional_network_is_rejected(tmp_path, capsys):
    np.save(tmp_path / "scan.npy", slices(1))
    images = save_tiny(tmp_path / "img.safetensors", kind="images")
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", images)
    assert code == 2 and "mode 'pet'" in err


def test_failure_while_writing_leaves_the_previous_outputs_intact(tmp_path, net, capsys, monkeypatch):
    np.save(tmp_path / "scan.npy", slices(1))
    out = tmp_path / "o"
    code, _, _ = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, "--samples", 2, "--out", out)
    assert code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["enhanced.npz", "enhanced.png", "mean.nii.gz", "std.nii.gz"]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(enhance_cmd, "enhancement_panel", broken)  # the last of the four files fails
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, "--samples", 3, "--seed", 9,
                       "--out", out)
    assert code == 2 and "disk full" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no new enhanced.npz beside the old std
    monkeypatch.undo()
    # A run without std replaces the whole set: the earlier std.nii.gz does not stay behind.
    code, _, _ = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, "--samples", 1, "--out", out)
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["enhanced.npz", "enhanced.png", "mean.nii.gz"]


def test_out_and_n_iter_are_checked_before_sampling(tmp_path, net, capsys, monkeypatch):
    monkeypatch.setattr(enhance_cmd, "enhance", lambda *a, **k: pytest.fail("sampling started"))
    np.save(tmp_path / "scan.npy", slices(1))
    (tmp_path / "taken").write_text("a file")
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, "--out", tmp_path / "taken")
    assert code == 2 and err == (
        f"petdiff enhance: --out: expected an output folder, found an existing file {tmp_path / 'taken'}\n"
    )
    code, _, err = run(tmp_path, capsys, tmp_path / "scan.npy", "--network", net, "--sinogram", "--n-iter", 0)
    assert code == 2 and err.count("\n") == 1 and "--n-iter: expected at least 1 MLEM iteration" in err


def test_panel_slices():
    assert panel_slices(1) == [0]
    assert panel_slices(9, count=1) == [4]
    assert panel_slices(9) == [1, 4, 7]
    nonzero = np.array([False, False, True, True, False])
    assert panel_slices(5, nonzero, count=1) == [3]
    assert panel_slices(5, np.zeros(5, bool), count=2) == [1, 3]
