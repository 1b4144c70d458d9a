"""Checkpoint files: network snapshots (safetensors + JSON sidecar) and training states (torch.save, weights only).

Loading either kind runs no code from the file: snapshots are safetensors + JSON, training states are read with
`torch.load(weights_only=True)` and may only hold tensors, numbers, strings, lists and dicts.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from petdiff.training.ema import EMA, unwrap
from petdiff.training.rng import capture_rng_state, restore_rng_state
from petdiff.utils.io import atomic_write

NETWORK_FORMAT = "petdiff-network"
STATE_FORMAT = "petdiff-training-state"
FORMAT_VERSION = 1
_SIDECAR_RESERVED = ("format", "version", "architecture", "sha256")
_STATE_KEYS = ("format", "version", "nimg", "kimg", "net", "ema", "optimizer", "rng", "sampler", "config", "extra")


def snapshot_name(kimg: int) -> str:
    """File name of the network snapshot at `kimg`: network-snapshot-<kimg:06d>.safetensors."""
    return f"network-snapshot-{int(kimg):06d}.safetensors"


def training_state_name(kimg: int) -> str:
    """File name of the training state at `kimg`: training-state-<kimg:06d>.pt."""
    return f"training-state-{int(kimg):06d}.pt"


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar next to a snapshot: same name with .json instead of .safetensors."""
    return Path(path).with_suffix(".json")


def _snapshot_path(path: str | os.PathLike) -> Path:
    """Accept a snapshot given by its .safetensors file or by its .json sidecar."""
    path = Path(path)
    if path.suffix == ".json":
        return path.with_suffix(".safetensors")
    if path.suffix != ".safetensors":
        raise ValueError(f"path: expected a network snapshot '*.safetensors' (or its '.json' sidecar), found {path}")
    return path


def _shapes(names: list[str], tensors: Mapping[str, torch.Tensor], limit: int) -> str:
    """'name (shape), ...' for the first `limit` names."""
    shown = ", ".join(f"{n} {tuple(tensors[n].shape)}" for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def state_mismatch(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], limit: int = 5
) -> str | None:
    """Describe how tensor names/shapes in `found` differ from `expected` (None when they agree)."""
    missing = [n for n in expected if n not in found]
    unexpected = sorted(n for n in found if n not in expected)  # file order is not meaningful
    reshaped = [n for n in expected if n in found and tuple(expected[n].shape) != tuple(found[n].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing from the file: {_shapes(missing, expected, limit)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensor(s) in the file: {_shapes(unexpected, found, limit)}")
    if reshaped:
        shown = ", ".join(
            f"{n}: network {tuple(expected[n].shape)} vs file {tuple(found[n].shape)}" for n in reshaped[:limit]
        )
        more = f", ... ({len(reshaped) - limit} more)" if len(reshaped) > limit else ""
        parts.append(f"{len(reshaped)} shape mismatch(es): {shown}{more}")
    return "; ".join(parts) or None


def _json_text(obj: Any, where: str) -> str:
    """Strict JSON (no NaN/inf, no objects) or a ValueError naming `where`."""
    try:
        return json.dumps(obj, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: expected JSON-serialisable values (numbers, strings, lists, dicts), {e}") from None


def save_network(
    path: str | os.PathLike,
    module: torch.nn.Module,
    architecture: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write `module`'s weights to `path` (.safetensors) and {format, version, architecture, **metadata} beside it."""
    path = _snapshot_path(path)
    module = unwrap(module)
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"module: expected a torch.nn.Module, found {type(module).__name__}")
    if not isinstance(architecture, Mapping):
        raise ValueError(f"architecture: expected a dict to rebuild the module from, found {architecture!r}")
    metadata = dict(metadata or {})
    clash = sorted(set(metadata) & set(_SIDECAR_RESERVED))
    if clash:
        raise ValueError(f"metadata: keys {clash} are reserved for the sidecar itself; rename them")
    tensors = {}
    for name, value in module.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"module: state_dict entry {name!r} is a {type(value).__name__}, not a tensor")
        # A private contiguous CPU copy: safetensors refuses tensors that share memory (tied weights).
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
    blob = safetensors.torch.save(tensors, metadata={"format": NETWORK_FORMAT})
    sidecar = {"format": NETWORK_FORMAT, "version": FORMAT_VERSION, "architecture": dict(architecture), **metadata}
    sidecar["sha256"] = hashlib.sha256(blob).hexdigest()
    text = _json_text(sidecar, f"{sidecar_path(path)}")  # before writing anything, so a bad value leaves no files
    with atomic_write(path, "wb") as f:
        f.write(blob)
    with atomic_write(sidecar_path(path), "w") as f:
        f.write(text)
    return path


def read_network_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The validated sidecar of a snapshot (architecture, kimg, config_hash, normalization, ...)."""
    side = sidecar_path(_snapshot_path(path))
    if not side.is_file():
        raise ValueError(f"{side}: sidecar not found; a snapshot is a pair '<name>.safetensors' + '<name>.json'")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{side}: expected a JSON sidecar, found unreadable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != NETWORK_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{side}: expected field 'format' = {NETWORK_FORMAT!r}, found {found!r}")
    version = meta.get("version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{side}: expected field 'version' in 1..{FORMAT_VERSION}, found {version!r}")
    if not isinstance(meta.get("architecture"), dict):
        raise ValueError(f"{side}: expected field 'architecture' to be a dict, found {meta.get('architecture')!r}")
    return meta


def load_network(
    path: str | os.PathLike,
    build_fn: Callable[[dict[str, Any]], torch.nn.Module],
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the module with build_fn(sidecar architecture) and load the weights; returns (module.eval(), sidecar)."""
    meta = read_network_metadata(path)
    path = _snapshot_path(path)
    if not path.is_file():
        raise ValueError(f"{path}: weights file not found (its sidecar exists)")
    blob = path.read_bytes()
    try:
        tensors = safetensors.torch.load(blob)
    except safetensors.SafetensorError as e:
        raise ValueError(
            f"{path}: expected a safetensors file, found an unreadable one ({e}); truncated or corrupt?"
        ) from None
    if "sha256" in meta and hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise ValueError(
            f"{path}: contents do not match the sha256 recorded in {sidecar_path(path).name}: "
            "the file is corrupt or the sidecar belongs to another snapshot"
        )
    module = build_fn(copy.deepcopy(meta["architecture"]))
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"build_fn: expected a callable returning a torch.nn.Module, found {type(module).__name__}")
    problem = state_mismatch(module.state_dict(), tensors)
    if problem:
        raise ValueError(f"{path}: weights do not match the network built from the sidecar's architecture: {problem}")
    module.load_state_dict(tensors, strict=True)
    return module.to(device).eval(), meta


# ---- training state --------------------------------------------------------------------------------------------


def _check_plain(obj: Any, where: str) -> None:
    """Require data that torch.load(weights_only=True) accepts: tensors, numbers, strings, None, lists, dicts."""
    if isinstance(obj, torch.Tensor) or type(obj) in (str, int, float, bool, type(None)):
        return
    if type(obj) in (list, tuple, torch.Size):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise ValueError(f"{where}: expected str or int keys, found key {key!r} of type {type(key).__name__}")
            _check_plain(value, f"{where}.{key}")
        return
    raise ValueError(
        f"{where}: expected only tensors, numbers, strings, None, lists and dicts (loadable with weights_only=True), "
        f"found {type(obj).__module__}.{type(obj).__qualname__}"
    )


def save_training_state(
    path: str | os.PathLike,
    *,
    net: torch.nn.Module,
    ema: EMA | torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    nimg: int,
    config: Mapping[str, Any],
    sampler: Any = None,
    generators: Mapping[str, torch.Generator] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Atomically torch.save everything needed to resume: weights, EMA, optimiser, RNGs, sampler position, progress."""
    if isinstance(nimg, bool) or not isinstance(nimg, int) or nimg < 0:
        raise ValueError(f"nimg: expected the number of images trained as an integer >= 0, found {nimg!r}")
    state = {
        "format": STATE_FORMAT,
        "version": FORMAT_VERSION,
        "nimg": nimg,
        "kimg": nimg / 1000,
        "net": unwrap(net).state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng_state(generators),
        "sampler": sampler.state_dict() if hasattr(sampler, "state_dict") else sampler,
        "config": config,
        "extra": dict(extra or {}),
    }
    _check_plain(state, "training state")
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return path


def _unreadable_reason(error: Exception) -> str:
    """What torch.load(weights_only=True) found wrong with a file, in one line."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n")[0]
        reason = reason.split(" was not an allowed global")[0].split(". Please")[0].strip()
        if reason.startswith("Unsupported global"):
            return (
                "refused to load: expected only tensors and plain data (weights_only=True), "
                f"found a pickled Python object ({reason.removeprefix('Unsupported global: ')})"
            )
        return f"expected a torch.save file, found an unreadable one ({reason}); truncated or corrupt?"
    detail = text.strip().splitlines()[0] if text.strip() else ""
    detail = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return f"expected a torch.save file, found an unreadable one ({detail}); truncated or corrupt?"


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training-state file with torch.load(weights_only=True) (tensors on CPU) and validate its layout."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: training state file not found")
    try:
        with warnings.catch_warnings():  # junk bytes make torch warn about the "pickle protocol" before failing
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure to parse (the unpickler raises IndexError, KeyError, ... on junk bytes)
        raise ValueError(f"{path}: not a petdiff training state: {_unreadable_reason(e)}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: expected field 'format' = {STATE_FORMAT!r}, found {found!r}")
    if not isinstance(state.get("version"), int) or not 1 <= state["version"] <= FORMAT_VERSION:
        raise ValueError(f"{path}: expected field 'version' in 1..{FORMAT_VERSION}, found {state.get('version')!r}")
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path}: expected fields {list(_STATE_KEYS)}, missing {missing}")
    nimg = state["nimg"]
    if isinstance(nimg, bool) or not isinstance(nimg, int) or nimg < 0:
        raise ValueError(f"{path}: expected field 'nimg' to be an integer >= 0, found {nimg!r}")
    for key in ("net", "ema"):
        value = state[key]
        if not isinstance(value, dict) or not all(isinstance(t, torch.Tensor) for t in value.values()):
            raise ValueError(f"{path}: expected field {key!r} to be a dict of tensors, found {type(value).__name__}")
    for key in ("optimizer", "rng", "config", "extra"):
        if not isinstance(state[key], dict):
            raise ValueError(f"{path}: expected field {key!r} to be a dict, found {type(state[key]).__name__}")
    return state


def restore_training_state(
    state: Mapping[str, Any] | str | os.PathLike,
    *,
    net: torch.nn.Module,
    ema: EMA | torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: Any = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    """Load a training state (dict or file) into net, EMA, optimiser, sampler and RNGs; returns the state dict."""
    source = f"{state}" if isinstance(state, (str, os.PathLike)) else "training state"
    if isinstance(state, (str, os.PathLike)):
        state = load_training_state(state)
    for key, target in (("net", unwrap(net)), ("ema", ema)):
        problem = state_mismatch(target.state_dict(), state[key])
        if problem:
            raise ValueError(f"{source}: field {key!r} does not match the network: {problem}")
        target.load_state_dict(state[key])
    with _field(source, "optimizer", "does not fit this optimiser"):
        optimizer.load_state_dict(state["optimizer"])
    if sampler is not None:
        if state["sampler"] is None:
            raise ValueError(f"{source}: a sampler was passed but the file holds no sampler state")
        with _field(source, "sampler", "does not fit this data sampler"):
            sampler.load_state_dict(state["sampler"])
    with _field(source, "rng", "is not a set of random-number-generator states"):
        restore_rng_state(state["rng"], generators)
    return dict(state)


@contextlib.contextmanager
def _field(source: str, key: str, what: str) -> Iterator[None]:
    """Turn any failure to restore field `key` of a training state into a ValueError naming the file and field."""
    try:
        yield
    except ValueError as e:
        if str(e).startswith(source):
            raise
        raise ValueError(f"{source}: field {key!r} {what} ({e})") from None
    except Exception as e:  # a well-formed file with a corrupt field: torch raises TypeError, IndexError, ...
        raise ValueError(f"{source}: field {key!r} {what} ({type(e).__name__}: {e})") from None


def find_regression_snapshot(residual: Path, source: dict, require_hash: bool = False) -> Path | None:
    """The regression snapshot a residual's sidecar names (`mean_network`): next to the residual under its file name
    (shipped pairs, copied run folders), else at the path training recorded; the first whose sha256 is the recorded
    one (with no hash recorded: the first that exists, unless `require_hash`). None when there is none."""
    recorded = source.get("sha256")
    candidates = [Path(residual).parent / source["file"]] + ([Path(source["path"])] if source.get("path") else [])
    for candidate in candidates:
        if candidate.is_file() and sidecar_path(candidate).is_file():
            found = read_network_metadata(candidate).get("sha256")
            if found == recorded or (not recorded and not require_hash):
                return candidate
    return None
