"""Loading a trained network snapshot for inference: weights + sidecar, checked against the inference contract."""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from petdiff.data.normalization import NORMALIZATIONS
from petdiff.inference.spec import snapshot_role
from petdiff.models import build_network
from petdiff.training.checkpoint import find_regression_snapshot, load_network, read_network_metadata, sidecar_path
from petdiff.training.distributed import select_device

MODES = ("pet", "images")
# The shipped residual-corrective pair; load_model(None) gives its regression network, load_pair(None) both.
DEFAULT_PAIR = ("regression.safetensors", "residual.safetensors")
DEFAULT_WEIGHTS = DEFAULT_PAIR[0]
COUNT_LEVEL_FILE = "count_level.safetensors"  # optional third snapshot beside a scan-model pair: estimates K
# Extra condition channels per sidecar role (aliases resolved) besides the 2k+1 low-dose slices: the residual
# diffusion model also sees the regression mean. Snapshots without a role are denoisers.
ROLE_EXTRA_CONDITIONS = {"denoiser": 0, "regression": 0, "residual": 1, "count_level": 0}


def default_weights_dir() -> Path:
    """The folder of the weights shipped with petdiff (src/petdiff/weights)."""
    return Path(str(importlib.resources.files("petdiff") / "weights"))


@dataclass
class LoadedModel:
    """A network snapshot ready for sampling: `net` (EDMPrecond in eval mode on its device), sidecar `meta`, `path`."""

    net: torch.nn.Module
    meta: dict[str, Any]
    path: Path

    @property
    def device(self) -> torch.device:
        """The device the network's weights live on."""
        return next(self.net.parameters()).device

    @property
    def mode(self) -> str:
        """'pet' (conditioned on a low-dose image) or 'images' (unconditional / class-conditional)."""
        return self.meta["mode"]

    @property
    def role(self) -> str:
        """'denoiser' (one conditional diffusion network), 'regression' (old snapshots: 'mean'), 'residual'
        (diffusion on x − μ) or 'count_level' (the count-level estimator)."""
        return snapshot_role(self.meta)

    @property
    def resolution(self) -> tuple[int, int]:
        """(H, W) of the images the network was trained on."""
        return tuple(self.net.img_resolution)


def _resolve_path(path: str | os.PathLike | None) -> Path:
    """The .safetensors file of `path` (or of its .json sidecar), or the shipped default weights."""
    if path is None:
        folder = default_weights_dir()
        weights = folder / DEFAULT_WEIGHTS
        if not weights.is_file() or not sidecar_path(weights).is_file():
            raise ValueError(
                f"network: no default weights in {folder} (expected {DEFAULT_WEIGHTS} + its .json sidecar); "
                "train one with `petdiff train -cn=pet_mean_64` (see weights/MODEL_CARD.md) and pass its snapshot "
                "(--network results/<run>/network-snapshot-*.safetensors, or network=PATH for generate)"
            )
        return weights
    p = Path(path)
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if p.suffix != ".safetensors":
        raise ValueError(f"network: expected a '*.safetensors' snapshot or its '.json' sidecar, found {path}")
    if not p.is_file():
        raise ValueError(f"network: {p}: file not found")
    return p


def check_meta(meta: dict[str, Any], net: torch.nn.Module, where: str) -> None:
    """Require the sidecar fields inference relies on (mode, resolution, normalization, ...) and their agreement."""
    mode = meta.get("mode")
    if mode not in MODES:
        raise ValueError(f"{where}: expected field 'mode' in {MODES}, found {mode!r} (not a petdiff snapshot?)")
    resolution = meta.get("resolution")
    height, width = net.img_resolution
    if resolution not in (height, [height, width]) or isinstance(resolution, bool):
        raise ValueError(f"{where}: expected field 'resolution' = {height} (the network's), found {resolution!r}")
    cond = net.cond_channels
    if mode == "pet":
        role = snapshot_role(meta)
        if role not in ROLE_EXTRA_CONDITIONS:
            raise ValueError(f"{where}: expected field 'role' in {sorted(ROLE_EXTRA_CONDITIONS)}, found {role!r}")
        context = (meta.get("data") or {}).get("context", 0) or 0
        expected = 2 * int(context) + 1 + ROLE_EXTRA_CONDITIONS[role]
        if cond != expected or meta.get("cond_channels", expected) != expected:
            raise ValueError(f"{where}: a {role!r} network of mode 'pet' has cond_channels = {expected}, found {cond}")
        if meta.get("normalization") not in NORMALIZATIONS:
            raise ValueError(
                f"{where}: expected field 'normalization' in {NORMALIZATIONS}, found {meta.get('normalization')!r}"
            )
    elif cond != 0:
        raise ValueError(f"{where}: mode 'images' expects an unconditional network (cond_channels = 0), found {cond}")
    for key in ("data", "sampling"):
        if key in meta and not isinstance(meta[key], dict):
            raise ValueError(f"{where}: expected field {key!r} to be a dict, found {type(meta[key]).__name__}")


def load_model(path: str | os.PathLike | None = None, device: str | torch.device | None = None) -> LoadedModel:
    """Load a snapshot (.safetensors or its .json; None = the shipped default) onto `device` (None = CUDA if any)."""
    weights = _resolve_path(path)
    device = select_device(0, device)
    net, meta = load_network(weights, build_network, device=device)
    check_meta(meta, net, str(sidecar_path(weights)))
    return LoadedModel(net=net.eval().requires_grad_(False), meta=meta, path=weights)


def read_role(path: str | os.PathLike) -> str:
    """The role a snapshot's sidecar declares ('denoiser' when it has none), without loading the weights."""
    return snapshot_role(read_network_metadata(_resolve_path(path)))


def load_pair(path: str | os.PathLike | None = None, device: str | torch.device | None = None
              ) -> tuple[LoadedModel, LoadedModel | None]:
    """(regression mean, residual model or None) from a snapshot path; None = the shipped pair.

    A residual snapshot names its frozen regression network in its sidecar (`mean_network`: file, path, sha256
    of its weights): it is looked for next to the residual under its file name, then at the recorded path, and
    the first whose sha256 matches is loaded. A regression snapshot alone gives (mean, None): the mean method.
    """
    if path is None:
        folder = default_weights_dir()
        path = folder / DEFAULT_PAIR[1]
        if not path.is_file():
            raise ValueError(f"network: no default weights in {folder} (expected {' + '.join(DEFAULT_PAIR)} "
                             "with their .json sidecars); pass a snapshot with --network")
    first = load_model(path, device)
    if first.role == "regression":
        return first, None
    if first.role != "residual":
        raise ValueError(f"network: {first.path}: expected a regression or residual snapshot, found role "
                         f"{first.role!r} (a single conditional denoiser: use --method denoiser)")
    source = first.meta.get("mean_network")
    if not isinstance(source, dict) or not isinstance(source.get("file"), str):
        raise ValueError(f"{sidecar_path(first.path)}: expected field 'mean_network' naming the regression "
                         f"snapshot the residual was trained on, found {source!r}")
    recorded = source.get("sha256")
    mean_path = find_regression_snapshot(first.path, source)
    if mean_path is None:
        raise ValueError(f"{sidecar_path(first.path)}: its regression network {source['file']} (sha256 "
                         f"{str(recorded)[:12]}…) is neither next to it nor at {source.get('path')}")
    mean = load_model(mean_path, device)
    if mean.role != "regression":
        raise ValueError(f"{mean_path}: expected role 'regression' (or 'mean'), found {mean.role!r}")
    return mean, first


def load_count_estimator(folder: Path, device: str | torch.device | None = None) -> LoadedModel | None:
    """The optional count-level network (`count_level.safetensors`, role 'count_level') in `folder`, else None."""
    path = Path(folder) / COUNT_LEVEL_FILE
    if not path.is_file() or not sidecar_path(path).is_file():
        return None
    model = load_model(path, device)
    if model.role != "count_level":
        raise ValueError(f"{sidecar_path(path)}: expected role 'count_level', found {model.role!r}")
    return model
