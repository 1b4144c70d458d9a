"""Users' images: .npy / .npz / NIfTI loading, radiological orientation, resampling and the affine round trip."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from petdiff.phantoms import load_images, load_volume, resample_images, save_nifti


def _marked_volume(shape=(6, 8, 3)) -> np.ndarray:
    """RAS+ volume with distinct markers: right-anterior-inferior = 5, left-posterior-superior = 7."""
    vol = np.zeros(shape, np.float32)
    vol[-1, -1, 0] = 5.0  # i max = subject's right, j max = anterior, k = 0 inferior
    vol[0, 0, -1] = 7.0
    vol[2, 5, 1] = 3.0
    return vol


AFFINE = np.array([[2.0, 0, 0, -10], [0, 3.0, 0, -20], [0, 0, 4.0, -30], [0, 0, 0, 1]])


@pytest.mark.parametrize("name", ["ras.nii.gz", "ras.nii"])
def test_nifti_radiological_orientation(tmp_path, name):
    vol = _marked_volume()
    nib.save(nib.Nifti1Image(vol, AFFINE), tmp_path / name)
    v = load_volume(tmp_path / name)
    assert v.kind == "nifti" and v.data.shape == (3, 8, 6)
    # Radiological axial slices: row 0 = anterior, column 0 = subject's right, slice 0 = inferior.
    assert v.data[0, 0, 0] == 5.0 and v.data[2, 7, 5] == 7.0
    # slice[n][r, c] = canonical[I−1−c, J−1−r, n]
    assert v.data[1, 8 - 1 - 5, 6 - 1 - 2] == 3.0
    np.testing.assert_allclose(v.affine, AFFINE)


def test_nifti_stored_in_another_orientation_gives_the_same_slices(tmp_path):
    vol = _marked_volume()
    nib.save(nib.Nifti1Image(vol, AFFINE), tmp_path / "ras.nii")
    # Same anatomy stored left-to-right (LAS): flip the first axis and mirror the affine.
    las_affine = AFFINE.copy()
    las_affine[0, 0], las_affine[0, 3] = -2.0, -10 + 2.0 * (vol.shape[0] - 1)
    nib.save(nib.Nifti1Image(vol[::-1].copy(), las_affine), tmp_path / "las.nii")
    a, b = load_volume(tmp_path / "ras.nii"), load_volume(tmp_path / "las.nii")
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(a.affine, b.affine)


def test_nifti_round_trip_keeps_values_and_affine(tmp_path):
    vol = np.random.default_rng(0).random((6, 8, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, AFFINE), tmp_path / "in.nii.gz")
    v = load_volume(tmp_path / "in.nii.gz")
    images = load_images(tmp_path / "in.nii.gz")
    assert images.shape == (3, 1, 8, 6) and images.dtype == torch.float32
    save_nifti(tmp_path / "out.nii.gz", images * 2, like=v)
    out = nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_allclose(out.get_fdata(), 2 * vol, rtol=1e-6)
    np.testing.assert_allclose(out.affine, AFFINE)


def test_resampled_affine_keeps_world_positions(tmp_path):
    vol = _marked_volume((6, 9, 2))  # non-square (rows 9 ≠ columns 6): padded asymmetrically to 9×9
    nib.save(nib.Nifti1Image(vol, AFFINE), tmp_path / "v.nii")
    v = load_volume(tmp_path / "v.nii", resolution=9)  # padding only, no scaling
    canon = v.to_canonical(v.data)
    for value, original in ((5.0, (5, 8, 0)), (7.0, (0, 0, 1))):
        ijk = np.argwhere(canon == value)[0]
        world_new = v.affine @ np.array([*ijk, 1.0])
        world_old = AFFINE @ np.array([*original, 1.0])
        np.testing.assert_allclose(world_new, world_old)
    # Down-sampling by 3 (9 → 3): voxels become 3× larger, the volume's centre stays put.
    v3 = load_volume(tmp_path / "v.nii", resolution=3)
    np.testing.assert_allclose(np.abs(np.diag(v3.affine))[:2], [6.0, 9.0])
    centre = lambda aff, n: aff @ np.array([(n - 1) / 2, (n - 1) / 2, 0, 1.0])  # noqa: E731
    np.testing.assert_allclose(centre(v3.affine, 3), centre(v.affine, 9))


def test_npy_and_npz_layouts(tmp_path):
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.save(tmp_path / "one.npy", img)
    assert load_images(tmp_path / "one.npy").shape == (1, 1, 4, 4)
    np.save(tmp_path / "stack.npy", np.stack([img, img + 1]))
    stack = load_images(tmp_path / "stack.npy")
    assert stack.shape == (2, 1, 4, 4) and float(stack[1, 0, 0, 0]) == 1.0
    np.savez(tmp_path / "images.npz", images=np.stack([img] * 3), other=np.zeros(2))
    assert load_images(tmp_path / "images.npz").shape == (3, 1, 4, 4)
    np.savez(tmp_path / "only.npz", whatever=img)
    assert load_images(tmp_path / "only.npz").shape == (1, 1, 4, 4)
    np.savez(tmp_path / "bw.npz", phantoms=np.zeros((5, 16), np.uint8))
    assert load_images(tmp_path / "bw.npz").shape == (5, 1, 4, 4)


def test_resampling_keeps_values():
    x = torch.rand(2, 1, 128, 128)
    down = resample_images(x, 64)
    assert down.shape == (2, 1, 64, 64)
    # Integer factor: area averaging keeps the mean value exactly (total activity × pixel area).
    torch.testing.assert_close(down.mean((1, 2, 3)), x.mean((1, 2, 3)), rtol=1e-5, atol=1e-6)
    const = torch.full((1, 1, 30, 30), 3.0)
    for res in (7, 30, 64):
        torch.testing.assert_close(resample_images(const, res), torch.full((1, 1, res, res), 3.0))
    # A non-square image is zero-padded to a centred square first.
    padded = resample_images(torch.ones(1, 1, 2, 4), 4)
    assert padded[0, 0, 0].sum() == 0 and padded[0, 0, 1].sum() == 4


@pytest.mark.parametrize(
    ("name", "writer", "match"),
    [
        ("bad.nii", lambda p: p.write_bytes(b"not a nifti at all" * 30), "not a readable NIfTI"),
        ("nan.npy", lambda p: np.save(p, np.full((4, 4), np.nan)), "NaN"),
        ("neg.npy", lambda p: np.save(p, -np.ones((4, 4))), "non-negative"),
        ("five.npy", lambda p: np.save(p, np.zeros((2, 2, 2, 2, 2))), "expected an image"),
        ("keys.npz", lambda p: np.savez(p, a=np.zeros(4), b=np.zeros(4)), "expected key 'images' or 'phantoms'"),
        ("img.png", lambda p: p.write_bytes(b"\x89PNG"), "expected a .npy, .npz, .nii"),
        ("trunc.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00v\x00"), "truncated or corrupt"),
    ],
)
def test_bad_files_are_named(tmp_path, name, writer, match):
    path = tmp_path / name
    writer(path)
    with pytest.raises(ValueError, match=match) as info:
        load_images(path)
    assert name in str(info.value)


def test_truncated_nifti(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((16, 16, 8), np.float32), AFFINE), tmp_path / "full.nii")
    (tmp_path / "cut.nii").write_bytes((tmp_path / "full.nii").read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cut\.nii: not a readable NIfTI"):
        load_images(tmp_path / "cut.nii")


def test_save_nifti_checks_shape_and_name(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((2, 4, 4)))
    v = load_volume(tmp_path / "a.npy")
    with pytest.raises(ValueError, match="images"):
        save_nifti(tmp_path / "o.nii", np.ones((2, 5, 5)), v)
    with pytest.raises(ValueError, match="path"):
        save_nifti(tmp_path / "o.npy", np.ones((2, 4, 4)), v)
    save_nifti(tmp_path / "o.nii", np.ones((2, 4, 4)), v)  # no affine known: identity
    np.testing.assert_allclose(nib.load(tmp_path / "o.nii").affine, np.eye(4))
