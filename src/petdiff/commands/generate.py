"""`petdiff generate -cn=NAME network=PATH seeds=0-63 [outdir=...] [key=value ...]`: one sample per seed.

Arguments are those of `petdiff train` (-cn/-cd, Hydra overrides); bare keys of the `sampling` section
(network, seeds, batch, sampler, steps, S_churn, ..., outdir, is_image, class_idx) may be given without the
`sampling.` prefix. The network comes from `sampling.network` (default: the shipped weights); the sampler
settings from the config's `sampling` section.

Output (rank 0 writes, every file atomically):
  * `sampling.is_image` true and `outdir` a folder: one PNG per seed, `outdir/<seed // 1000 · 1000:06d>/<seed:06d>.png`,
    the network range [−1, 1] mapped to 0…255 (as NVlabs/edm).
  * otherwise one .npz: `outdir` itself when it ends in .npz, else `outdir/samples.npz`, with
    `images` (N, C, H, W) float32 in the network range, `seeds` (N,) uint64, `meta` (JSON), `labels` (N,) for
    class-conditional networks, and for PET networks the seeds' scans: `cond_images` (the normalised low-dose
    condition), `full_dose`, `truth` (normalised alike), `scale`, `counts`, `fraction` (N,), so that
    (x + 1)·scale/2 gives full-dose reconstruction units.
Under torchrun the seed batches are dealt to the ranks round-robin and gathered on rank 0; every seed's noise
and condition come from the seed alone, so the files do not depend on the number of ranks.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from petdiff.diffusion import parse_seeds
from petdiff.inference import conditions_from_config, generate, load_model, rank_seeds
from petdiff.inference.model import LoadedModel
from petdiff.training import distributed as ddp
from petdiff.training.config import config_to_dict, list_configs, load_config, parse_config_args
from petdiff.utils.io import atomic_save_npz, atomic_write, check_output_file, check_output_folder

SAMPLING_KEYS = (
    "network", "seeds", "batch", "sampler", "steps", "sigma_min", "sigma_max", "rho", "S_churn", "S_min", "S_max",
    "S_noise", "guidance", "outdir", "is_image", "class_idx",
)
PAIR_KEYS = {"cond_images": "low_dose", "full_dose": "full_dose", "truth": "truth", "scale": "scale",
             "counts": "counts", "fraction": "fraction"}
USAGE = """usage: petdiff generate -cn=NAME [-cd=DIR] network=PATH seeds=0-63 [outdir=DIR|FILE.npz] [key=value ...]

Sample one image per seed from a trained network (configs: {configs}).
Bare sampling keys: {keys}.
"""


def expand_overrides(overrides: list[str]) -> list[str]:
    """'seeds=0-7' → 'sampling.seeds=0-7' for the bare keys of the sampling section (prefixes +, ++, ~ kept)."""
    expanded = []
    for item in overrides:
        prefix = item[: len(item) - len(item.lstrip("+~"))]
        body = item[len(prefix):]
        key = body.split("=", 1)[0]
        expanded.append(f"{prefix}sampling.{body}" if key in SAMPLING_KEYS else item)
    return expanded


def _outputs(outdir: str, is_image: bool) -> tuple[Path, bool]:
    """(path, as_png): a folder of PNGs, or one .npz file; checked before any sampling."""
    path = Path(outdir)
    if path.suffix.lower() == ".npz":
        return check_output_file(path, "outdir"), False
    if is_image:
        return check_output_folder(path, "outdir"), True
    return check_output_file(check_output_folder(path, "outdir") / "samples.npz", "outdir"), False


def _png_bytes(image: np.ndarray, seed: int) -> bytes:
    """8-bit PNG of one (C, H, W) image in [−1, 1]: round((x + 1)·127.5) clipped to 0…255."""
    from PIL import Image

    if image.shape[0] not in (1, 3):
        raise ValueError(
            f"sampling.is_image: PNG needs 1 or 3 channels, found {image.shape[0]} (seed {seed}); set is_image=false"
        )
    pixels = np.clip(np.rint((image + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_pngs(folder: Path, images: np.ndarray, seeds: list[int]) -> None:
    """One PNG per seed in sub-folders of 1000 seeds."""
    for image, seed in zip(images, seeds):
        with atomic_write(folder / f"{seed - seed % 1000:06d}" / f"{seed:06d}.png", "wb") as f:
            f.write(_png_bytes(image, seed))


def _payload(result: Any) -> dict[str, np.ndarray]:
    """The arrays one rank sends to rank 0."""
    arrays = {"images": result.images.numpy(), "seeds": np.asarray(result.seeds, dtype=np.uint64)}
    if result.labels is not None:
        arrays["labels"] = result.labels.numpy()
    if result.pairs is not None:
        arrays.update({key: getattr(result.pairs, field).numpy() for key, field in PAIR_KEYS.items()})
    return arrays


def gather_to_main(payload: dict[str, np.ndarray] | None, info: ddp.DistInfo) -> list[dict[str, np.ndarray]]:
    """Every rank's payload on rank 0 (empty list elsewhere); a plain list in a single process."""
    if info.world_size == 1:
        return [payload] if payload is not None else []
    parts = [None] * info.world_size if info.is_main else None
    dist.gather_object(payload, parts, dst=0)
    return [p for p in parts if p is not None] if info.is_main else []


def merge(parts: list[dict[str, np.ndarray]], seeds: list[int]) -> dict[str, np.ndarray]:
    """Concatenate the ranks' arrays and put them back in the order of `seeds`."""
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    position = {int(s): i for i, s in enumerate(merged["seeds"].tolist())}
    order = np.asarray([position[s] for s in seeds], dtype=np.int64)
    return {key: value[order] for key, value in merged.items()}


def _meta(cfg_name: str, model: LoadedModel, sampling: dict[str, Any]) -> dict[str, Any]:
    """What the .npz records about how it was made."""
    return {
        "config": cfg_name,
        "network": str(model.path),
        "mode": model.mode,
        "normalization": model.meta.get("normalization"),
        "target": model.meta.get("target"),
        "sampling": {k: v for k, v in sampling.items() if k not in ("network", "seeds", "outdir")},
        "units": "images, cond_images, full_dose, truth in the network range; (x + 1)·scale/2 = full-dose units",
    }


def _run(argv: list[str]) -> dict[str, Any] | None:
    """Parse, sample this rank's seeds, gather, write on rank 0; returns the summary (rank 0) or None."""
    args = parse_config_args(argv)
    if args.help:
        print(USAGE.format(configs=", ".join(list_configs(args.config_dir)), keys=", ".join(SAMPLING_KEYS)))
        return None
    if args.config_name is None:
        raise ValueError(f"-cn/--config-name: expected one of {list_configs(args.config_dir)}, found none")
    # `???` values outside `sampling` (an images config's data.path) are not needed to sample
    cfg = load_config(args.config_name, expand_overrides(args.overrides), args.config_dir, allow_missing=True)
    sampling = config_to_dict(cfg.sampling)
    seeds = parse_seeds(sampling["seeds"], "sampling.seeds", distinct=True)
    batch = sampling["batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"sampling.batch: expected an integer >= 1, found {batch!r}")
    start = time.perf_counter()
    info = ddp.init_distributed(cfg.run.device)
    try:
        path, as_png = _outputs(str(sampling.get("outdir") or "generated"), bool(sampling.get("is_image")))
        model = load_model(sampling["network"], info.device)
        if model.mode == "pet":
            conditions = conditions_from_config(config_to_dict(cfg.data), model)
        elif cfg.data.mode != model.mode:
            raise ValueError(f"config data.mode: the network {model.path.name} is unconditional (mode "
                             f"{model.mode!r}), found {cfg.data.mode!r}; use an images config (-cn=images_cpu)")
        else:
            conditions = None
        mine = rank_seeds(seeds, batch, info.rank, info.world_size)
        result = None
        if mine:
            result = generate(
                model, mine, conditions=conditions, defaults=sampling, batch_size=batch,
                class_idx=sampling.get("class_idx"), guidance=sampling.get("guidance", 1.0),
                progress=info.is_main and sys.stderr.isatty(),
            )
        parts = gather_to_main(None if result is None else _payload(result), info)
        if not info.is_main:
            return None
        arrays = merge(parts, seeds)
        if as_png:
            write_pngs(path, arrays["images"], seeds)
        else:
            meta = _meta(args.config_name, model, sampling)
            atomic_save_npz(path, **arrays, meta=np.asarray(json.dumps(meta)))
        return {"out": str(path), "images": len(seeds), "ranks": info.world_size,
                "seconds": round(time.perf_counter() - start, 2)}
    finally:
        # no barrier: after an error on one rank the others would wait forever (torchrun stops them instead)
        ddp.shutdown()


def main(argv: list[str]) -> int:
    """Run `petdiff generate`; errors print one line on stderr and return 2."""
    try:
        with torch.no_grad():
            summary = _run(list(argv))
    except (ValueError, OSError) as exc:
        print(f"petdiff generate: {exc}", file=sys.stderr)
        return 2
    if summary is not None:
        print(json.dumps(summary))
    return 0
