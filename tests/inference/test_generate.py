from __future__ import annotations

import json
import os
import traceback

import numpy as np
import pytest
import torch
from PIL import Image

from petdiff.commands import generate as generate_cmd
from petdiff.inference import condition_seed, conditions_from_config, generate, load_model, rank_seeds
from petdiff.training.config import config_to_dict, load_config, packaged_config_dir
from tests.conftest import RES, run_ranks, save_tiny


@pytest.fixture
def pet_snapshot(tmp_path):
    return save_tiny(tmp_path / "pet.safetensors")


@pytest.fixture
def images_snapshot(tmp_path):
    return save_tiny(tmp_path / "img.safetensors", kind="images")


def tiny_data(**overrides) -> dict:
    return {**config_to_dict(load_config("tiny_test").data), **overrides}


# ---- per-seed randomness -------------------------------------------------------------------------------------


def test_condition_seed_is_splitmix64():
    # SplitMix64 from state 0: the first output is 0xE220A8397B1DCDAF, the second (state 2φ) 0x6E789E6AA1B965F4
    assert condition_seed(0) == 0xE220A8397B1DCDAF
    assert condition_seed(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4
    assert len({condition_seed(s) for s in range(5000)}) == 5000
    assert all(0 <= condition_seed(s) < 2**64 for s in (0, 1, 2**64 - 1))


def test_rank_seeds_deal_batches_round_robin():
    seeds = list(range(10, 21))
    assert rank_seeds(seeds, 3, 0, 1) == seeds
    shares = [rank_seeds(seeds, 3, r, 2) for r in range(2)]
    assert shares == [[10, 11, 12, 16, 17, 18], [13, 14, 15, 19, 20]]
    assert rank_seeds([1, 2], 4, 1, 2) == []
    with pytest.raises(ValueError, match="rank"):
        rank_seeds(seeds, 3, 2, 2)


def test_unconditional_sample_of_a_seed_does_not_depend_on_the_batch(images_snapshot):
    model = load_model(images_snapshot, "cpu")
    batch = generate(model, [3, 4, 5], batch_size=2)
    alone = generate(model, [4], batch_size=1)
    assert batch.images.shape == (3, 1, RES, RES) and batch.seeds == (3, 4, 5)
    assert batch.labels is None and batch.pairs is None
    torch.testing.assert_close(batch.images[1:2], alone.images, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batch.images[0], batch.images[1])


def test_pet_conditions_and_samples_per_seed(pet_snapshot):
    model = load_model(pet_snapshot, "cpu")
    conditions = conditions_from_config(tiny_data(), model)
    batch = generate(model, [0, 1, 2], conditions=conditions, batch_size=3)
    alone = generate(model, [1], conditions=conditions, batch_size=1)
    pairs = batch.pairs
    assert pairs.low_dose.shape == (3, 1, RES, RES) and pairs.scale.shape == (3,)
    torch.testing.assert_close(pairs.low_dose[1:2], alone.pairs.low_dose)  # same scan for the seed, exactly
    torch.testing.assert_close(batch.images[1:2], alone.images, rtol=1e-5, atol=1e-5)
    assert not torch.equal(pairs.low_dose[0], pairs.low_dose[1])
    # the conditions are normalised like the training pairs: low-dose in [-1, 1] around the full-dose scale
    assert float(pairs.low_dose.min()) >= -1 and float(pairs.fraction[0]) == pytest.approx(0.25)


def test_pet_conditions_from_a_pair_file(tmp_path, pet_snapshot):
    from petdiff.commands import simulate

    pair_file = tmp_path / "pairs.npz"
    assert simulate.main(["--n", "4", "--resolution", str(RES), "--n-iter", "3", "--counts", "1e5",
                          "--out", str(pair_file)]) == 0
    model = load_model(pet_snapshot, "cpu")
    conditions = conditions_from_config(tiny_data(path=str(pair_file)), model)
    first = conditions([7, 8], "cpu")
    again = conditions([8], "cpu")
    torch.testing.assert_close(first.low_dose[1:], again.low_dose)
    stored = np.load(pair_file)["low_dose"]
    assert any(np.allclose(first.low_dose[0].numpy(), row) for row in stored)


def test_conditions_follow_the_data_section(pet_snapshot):
    model = load_model(pet_snapshot, "cpu")
    sim = conditions_from_config(tiny_data(counts=[1e4, 1e5], fraction=0.5, n_iter=2, random_contrast=1.0), model)
    simulator = sim.simulator
    assert (simulator.counts, simulator.fraction, simulator.n_iter) == ((1e4, 1e5), (0.5, 0.5), 2)
    assert simulator.random_contrast == 1.0 and simulator.normalizer.mode == "quantitative"


def test_conditions_must_match_the_network(pet_snapshot):
    model = load_model(pet_snapshot, "cpu")
    with pytest.raises(ValueError, match="resolution"):
        conditions_from_config(tiny_data(resolution=32), model)
    with pytest.raises(ValueError, match="normalization"):
        conditions_from_config(tiny_data(normalization="reference"), model)
    with pytest.raises(ValueError, match="mode"):
        conditions_from_config(tiny_data(mode="images"), model)
    with pytest.raises(ValueError, match="conditions"):
        generate(model, [0])


def test_guidance_needs_labels(images_snapshot):
    model = load_model(images_snapshot, "cpu")
    with pytest.raises(ValueError, match="guidance"):
        generate(model, [0], guidance=2.0)
    with pytest.raises(ValueError, match="class_idx"):
        generate(model, [0], class_idx=1)


def test_class_labels_per_seed(tmp_path):
    from petdiff.models import build_network, network_config
    from petdiff.training.checkpoint import save_network

    arch = network_config("pet_cpu_64", img_resolution=[RES, RES], model_channels=8, channel_mult=[1, 1],
                          num_blocks=1, attn_stages=[], dropout=0.0, cond_channels=0, label_dim=3)
    net = build_network(arch, seed=0)
    path = save_network(tmp_path / "c.safetensors", net, net.config,
                        {"mode": "images", "resolution": RES, "label_dim": 3, "sampling": {"steps": 2}})
    model = load_model(path, "cpu")
    a = generate(model, [0, 1, 2, 3], batch_size=4, guidance=2.0)
    b = generate(model, [2], guidance=2.0)
    assert a.labels.shape == (4,) and int(a.labels[2]) == int(b.labels[0])
    torch.testing.assert_close(a.images[2:3], b.images, rtol=1e-5, atol=1e-5)
    fixed = generate(model, [0, 1], class_idx=2)
    assert fixed.labels.tolist() == [2, 2]


# ---- the command ---------------------------------------------------------------------------------------------


def test_expand_overrides():
    assert generate_cmd.expand_overrides(["network=a.safetensors", "seeds=0-3", "+S_churn=1", "~outdir",
                                          "network.preset=x", "run.device=cpu"]) == [
        "sampling.network=a.safetensors", "sampling.seeds=0-3", "+sampling.S_churn=1", "~sampling.outdir",
        "network.preset=x", "run.device=cpu"]


def test_generate_pet_npz(tmp_path, pet_snapshot, capsys):
    out = tmp_path / "samples.npz"
    assert generate_cmd.main(["-cn=tiny_test", f"network={pet_snapshot}", "seeds=0-2", "batch=2",
                              f"outdir={out}"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 3
    with np.load(out) as f:
        assert {"images", "cond_images", "full_dose", "truth", "scale", "counts", "fraction", "seeds", "meta"} <= set(f)
        assert f["images"].shape == f["cond_images"].shape == (3, 1, RES, RES)
        assert f["seeds"].tolist() == [0, 1, 2]
        meta = json.loads(str(f["meta"]))
        images = f["images"]
    assert meta["mode"] == "pet" and meta["sampling"]["steps"] == 4  # the config's sampling section
    model = load_model(pet_snapshot, "cpu")
    expected = generate(model, [1], conditions=conditions_from_config(tiny_data(), model),
                        defaults=config_to_dict(load_config("tiny_test").sampling))
    np.testing.assert_allclose(images[1:2], expected.images.numpy(), rtol=1e-5, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_generate_images_png_folders(tmp_path, images_snapshot):
    config = tmp_path / "configs"
    config.mkdir()
    # an images config without its `???` data path (not needed for sampling), tiny sampling
    text = (packaged_config_dir() / "images_cpu.yaml").read_text()
    (config / "tiny_images.yaml").write_text(text.replace("steps: 18", "steps: 2"))
    out = tmp_path / "png"
    seeds = [998, 999, 1000]
    assert generate_cmd.main([f"-cd={config}", "-cn=tiny_images", f"network={images_snapshot}", "seeds=998-1000",
                              f"outdir={out}", "run.device=cpu"]) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == ["000000/000998.png", "000000/000999.png", "001000/001000.png"]
    npz = tmp_path / "same.npz"
    assert generate_cmd.main([f"-cd={config}", "-cn=tiny_images", f"network={images_snapshot}", "seeds=998-1000",
                              f"outdir={npz}", "run.device=cpu"]) == 0
    images = np.load(npz)["images"]
    for seed, image in zip(seeds, images):
        png = np.asarray(Image.open(out / f"{seed - seed % 1000:06d}" / f"{seed:06d}.png"))
        np.testing.assert_array_equal(png, np.clip(np.rint((image[0] + 1) * 127.5), 0, 255).astype(np.uint8))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["network=NET", "seeds=0"], "-cn"),
        (["-cn=tiny_test", "network=NET", "seeds=3-1"], "seeds"),
        (["-cn=tiny_test", "network=missing.safetensors", "seeds=0"], "not found"),
        (["-cn=tiny_test", "network=NET", "seeds=0", "batch=0"], "sampling.batch"),
        (["-cn=tiny_test", "network=NET", "seeds=0", "data.resolution=32"], "resolution"),
        (["-cn=tiny_test", "network=NET", "seeds=0", "nonsense=1"], "nonsense"),
    ],
)
def test_generate_errors_exit_2_without_traceback(tmp_path, pet_snapshot, capsys, argv, words):
    argv = [a.replace("NET", str(pet_snapshot)) for a in argv]
    assert generate_cmd.main([*argv, f"outdir={tmp_path / 'x.npz'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("petdiff generate:") and words in err and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()


def test_generate_help(capsys):
    assert generate_cmd.main(["--help"]) == 0
    assert "seeds" in capsys.readouterr().out


def test_unconditional_network_with_pet_config_is_rejected(tmp_path, images_snapshot, capsys):
    assert generate_cmd.main(["-cn=tiny_test", f"network={images_snapshot}", "seeds=0",
                              f"outdir={tmp_path / 'x.npz'}"]) == 2
    assert "unconditional" in capsys.readouterr().err


# ---- two real gloo ranks -------------------------------------------------------------------------------------


def _rank(rank: int, port: int, argv: list[str], out_dir: str) -> None:
    try:
        os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
        torch.set_num_threads(1)
        code = generate_cmd.main(argv)
        result = {"code": code}
    except Exception:
        result = {"error": traceback.format_exc()}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


def test_two_ranks_write_what_one_process_writes(tmp_path, pet_snapshot, capsys):
    argv = ["-cn=tiny_test", f"network={pet_snapshot}", "seeds=0-4", "batch=2"]
    assert generate_cmd.main([*argv, f"outdir={tmp_path / 'one.npz'}"]) == 0
    two = [*argv, f"outdir={tmp_path / 'two.npz'}"]
    for result in run_ranks(_rank, tmp_path, two):
        assert result.get("code") == 0, result.get("error")
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert two["seeds"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(one["cond_images"], two["cond_images"])
    np.testing.assert_allclose(one["images"], two["images"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("outdir", ["taken", "taken/x.npz", "folder.npz"])
def test_generate_checks_outdir_before_sampling(tmp_path, pet_snapshot, capsys, monkeypatch, outdir):
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "folder.npz").mkdir()
    monkeypatch.setattr(generate_cmd, "generate", lambda *a, **k: pytest.fail("sampling started"))
    argv = ["-cn=tiny_test", f"network={pet_snapshot}", "seeds=0", f"outdir={tmp_path / outdir}"]
    assert generate_cmd.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("petdiff generate: outdir: expected") and err.count("\n") == 1
