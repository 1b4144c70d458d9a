"""ImageFolderDataset: PNG folders (with and without class sub-folders) and .npz images, scaled to [−1, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from petdiff.data.images import ImageFolderDataset


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_png_folder_scaling_and_no_labels(tmp_path):
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    _png(tmp_path / "a.png", ramp)
    _png(tmp_path / "b.png", 255 - ramp)
    ds = ImageFolderDataset(tmp_path)
    assert len(ds) == 2 and ds.label_dim == 0 and not ds.has_labels
    image, label = ds[0]
    assert image.shape == (1, 16, 16) and image.dtype == torch.float32 and label.shape == (0,)
    # x/127.5 − 1: 0 → −1, 255 → +1, exactly.
    assert float(image.min()) == -1.0 and float(image.max()) == 1.0
    torch.testing.assert_close(image[0], torch.from_numpy(ramp).float() / 127.5 - 1)


def test_png_value_range(tmp_path):
    _png(tmp_path / "a.png", np.full((4, 4), 100, np.uint8))
    torch.testing.assert_close(ImageFolderDataset(tmp_path, value_range=(0, 200))[0][0], torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="value_range"):
        ImageFolderDataset(tmp_path, value_range=(3, float("nan")))


def test_rgb_and_16_bit_pngs(tmp_path):
    _png(tmp_path / "rgb" / "x.png", np.full((8, 8, 3), 255, np.uint8))
    assert ImageFolderDataset(tmp_path / "rgb")[0][0].shape == (3, 8, 8)
    deep = tmp_path / "deep"
    deep.mkdir()
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(deep / "y.png")
    torch.testing.assert_close(ImageFolderDataset(deep)[0][0], torch.ones(1, 8, 8))


def test_class_subfolders_give_one_hot_labels(tmp_path):
    for cls, n in (("cat", 2), ("dog", 3)):
        for i in range(n):
            _png(tmp_path / cls / f"{i}.png", np.zeros((8, 8), np.uint8))
    ds = ImageFolderDataset(tmp_path)
    assert len(ds) == 5 and ds.label_dim == 2 and ds.class_names == ["cat", "dog"]
    assert torch.equal(ds[0][1], torch.tensor([1.0, 0.0])) and torch.equal(ds[4][1], torch.tensor([0.0, 1.0]))


def test_resolution_resamples(tmp_path):
    _png(tmp_path / "a.png", np.full((32, 32), 255, np.uint8))
    _png(tmp_path / "b.png", np.zeros((16, 16), np.uint8))
    ds = ImageFolderDataset(tmp_path, resolution=8)
    assert ds.image_shape == (1, 8, 8)
    torch.testing.assert_close(ds[0][0], torch.ones(1, 8, 8))
    torch.testing.assert_close(ds[1][0], -torch.ones(1, 8, 8))


def test_npz_images_with_labels(tmp_path):
    images = np.stack([np.full((4, 4), v, np.uint8) for v in (0, 6, 12)])
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 2, 1]))
    ds = ImageFolderDataset(tmp_path / "d.npz")
    # Default range (0, max): 0 → −1, 12 → +1.
    assert float(ds[0][0].max()) == -1.0 and float(ds[1][0].max()) == 0.0 and float(ds[2][0].min()) == 1.0
    assert ds.label_dim == 3 and torch.equal(ds[1][1], torch.tensor([0.0, 0.0, 1.0]))
    fixed = ImageFolderDataset(tmp_path / "d.npz", value_range=(0, 24))
    assert float(fixed[2][0].max()) == 0.0
    with pytest.raises(ValueError, match="value_range"):
        ImageFolderDataset(tmp_path / "d.npz", value_range=(1, 1))


def test_brainweb_layout_npz(brainweb_path):
    ds = ImageFolderDataset(brainweb_path, resolution=32)
    image, label = ds[100]
    assert len(ds) == 281 and image.shape == (1, 32, 32) and label.shape == (0,)
    assert -1.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="found none"):
        ImageFolderDataset(tmp_path)
    _png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    _png(tmp_path / "b.png", np.zeros((9, 9), np.uint8))
    with pytest.raises(ValueError, match="one size"):
        ImageFolderDataset(tmp_path)
    _png(tmp_path / "sub" / "c.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="sub-folders"):
        ImageFolderDataset(tmp_path)
    with pytest.raises(ValueError, match="neither"):
        ImageFolderDataset(tmp_path / "missing")
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4)), labels=np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"bad.npz \[labels\]"):
        ImageFolderDataset(tmp_path / "bad.npz")
    np.savez(tmp_path / "nan.npz", images=np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        ImageFolderDataset(tmp_path / "nan.npz")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ValueError, match=r"x\.png: not a readable PNG"):
        ImageFolderDataset(tmp_path / "broken")


def test_dataloader_batches(tmp_path):
    for i in range(4):
        _png(tmp_path / f"{i}.png", np.full((8, 8), 40 * i, np.uint8))
    loader = torch.utils.data.DataLoader(ImageFolderDataset(tmp_path), batch_size=2)
    images, labels = next(iter(loader))
    assert images.shape == (2, 1, 8, 8) and labels.shape == (2, 0)
