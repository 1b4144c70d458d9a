"""Experiment configs: Hydra compose over the YAML files shipped in petdiff/configs plus an optional user folder.

Command lines follow the reference: `-cn=NAME` / `--config-name NAME`, `-cd DIR` / `--config-dir DIR` and
Hydra overrides `key=value`, `+key=value` (add), `~key` (delete). Configs are in struct mode: a misspelt key is
an error that lists the valid ones. Keys under OPEN_KEYS (free-form network overrides) may be set freely.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from petdiff.utils.io import atomic_write

OPEN_KEYS = ("network.overrides",)
HASH_EXCLUDE = ("run.run_dir", "run.resume", "run.desc", "run.device")  # where and how, not what, is trained
_NAME_FLAGS = ("-cn", "--config-name", "--config_name")
_DIR_FLAGS = ("-cd", "--config-dir", "--config_dir")


def packaged_config_dir() -> Path:
    """The folder of YAML experiment files installed with petdiff (src/petdiff/configs)."""
    path = Path(str(importlib.resources.files("petdiff") / "configs"))
    if not path.is_dir():
        raise ValueError(f"configs: expected the packaged config folder at {path}, found nothing (broken install?)")
    return path


def _check_config_dir(config_dir: str | os.PathLike | None) -> Path | None:
    """An existing user config folder as an absolute path (Hydra needs one), or None."""
    if config_dir is None:
        return None
    path = Path(config_dir).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"config_dir: expected an existing folder of YAML configs, found {config_dir}")
    return path


def list_configs(config_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the available configs: the packaged ones and those in `config_dir`."""
    folders = [packaged_config_dir()] + [d for d in [_check_config_dir(config_dir)] if d]
    return sorted({p.stem for d in folders for p in d.glob("*.yaml")})


@dataclass
class ConfigArgs:
    """A parsed command line: config name, optional user folder, Hydra overrides, and whether help was asked."""

    config_name: str | None = None
    config_dir: str | None = None
    overrides: list[str] = field(default_factory=list)
    help: bool = False


def parse_config_args(argv: Sequence[str]) -> ConfigArgs:
    """Parse `-cn=NAME`, `--config-name NAME`, `-cd=DIR`, `--config-dir DIR`, `-h` and `key=value` overrides."""
    args = ConfigArgs()
    argv = list(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, value = arg.partition("=")
        if flag in _NAME_FLAGS + _DIR_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{flag}: expected a value after it, found the end of the command line")
                i += 1
                value = argv[i]
            if flag in _NAME_FLAGS:
                args.config_name = value
            else:
                args.config_dir = value
        elif arg in ("-h", "--help"):
            args.help = True
        elif arg.startswith("-"):
            raise ValueError(
                f"argument {arg!r}: expected -cn/--config-name, -cd/--config-dir or a key=value override "
                "(-cp/--config-path is not supported: use -cd with a folder)"
            )
        elif "=" not in arg and not arg.startswith("~"):
            raise ValueError(f"override {arg!r}: expected key=value (or +key=value, ~key)")
        else:
            args.overrides.append(arg)
        i += 1
    return args


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every node and leaf of a config."""
    keys = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            path = f"{prefix}{key}"
            keys.append(path)
            # `???` values must not be read here: they are checked (and reported) separately.
            if not OmegaConf.is_missing(node, key):
                keys += _flat_keys(node[key], path + ".")
    return keys


def _is_open(key: str) -> bool:
    """A key inside a free-form section (OPEN_KEYS), where new fields are allowed."""
    return any(key.startswith(open_key + ".") for open_key in OPEN_KEYS)


def _compose(name: str, overrides: list[str], config_dir: Path | None) -> DictConfig:
    """Hydra compose from the user folder (packaged configs still reachable) or from the packaged folder."""
    primary = config_dir or packaged_config_dir()
    if config_dir is not None:
        overrides = [f"hydra.searchpath=[file://{packaged_config_dir()}]", *overrides]
    with initialize_config_dir(config_dir=str(primary), version_base=None, job_name="petdiff"):
        return compose(config_name=name, overrides=overrides)


def _unknown_key_error(name: str, override: Override, valid: list[str]) -> ValueError:
    """A ValueError naming the unknown key and listing the valid keys (of its section when that exists)."""
    key = override.key_or_group
    section = key.split(".")[0]
    in_section = [k for k in valid if k.startswith(section + ".")]
    shown = in_section or [k for k in valid if "." not in k]
    where = f"under {section!r}" if in_section else "(top-level sections)"
    return ValueError(
        f"override {override.input_line!r}: config {name!r} has no key {key!r}; valid keys {where}: "
        f"{', '.join(shown)} (use +{key}=... to add a new key deliberately)"
    )


def _check_types(name: str, override: Override, base: DictConfig, cfg: DictConfig) -> None:
    """Reject a text value for a number or non-bool for a bool (YAML gives the expected type)."""
    old = OmegaConf.select(base, override.key_or_group, throw_on_missing=False)
    new = OmegaConf.select(cfg, override.key_or_group, throw_on_missing=False)
    if isinstance(old, bool):
        ok = isinstance(new, bool) or new is None
    elif isinstance(old, (int, float)):
        ok = not isinstance(new, (str, bool))
    else:
        ok = True
    if not ok:
        raise ValueError(
            f"override {override.input_line!r}: {override.key_or_group} expects a {type(old).__name__} "
            f"(like {old!r}) in config {name!r}, found {new!r}"
        )


def _parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Hydra-parse each override, naming the one that does not parse and what is wrong with it (one line)."""
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed += parser.parse_overrides([text])
        except HydraException as e:
            # Hydra's message is the parser's complaint plus a line with a URL; keep the complaint.
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"override {text!r}: expected key=value in Hydra syntax (a list is [a,b], text with spaces or "
                f"brackets goes in quotes), found a value that does not parse: {reason}"
            ) from None
    return parsed


def load_config(
    config_name: str,
    overrides: Sequence[str] = (),
    config_dir: str | os.PathLike | None = None,
    allow_missing: bool = False,
) -> DictConfig:
    """Compose config `config_name` with Hydra overrides; unknown keys and missing `???` values are ValueErrors."""
    if not isinstance(config_name, str) or not config_name:
        raise ValueError(f"config_name: expected one of {list_configs(config_dir)}, found {config_name!r}")
    name = config_name.removesuffix(".yaml")
    folder = _check_config_dir(config_dir)
    parsed = _parse_overrides(overrides)
    try:
        base = _compose(name, [], folder)
    except MissingConfigException:
        raise ValueError(f"config_name: expected one of {list_configs(folder)}, found {config_name!r}") from None
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"config {name!r}: cannot be composed: {e}") from None
    ordered = _flat_keys(base)
    valid = set(ordered)
    final = []
    for o in parsed:
        key = o.key_or_group
        if key.startswith("hydra.") or o.type in (OverrideType.ADD, OverrideType.FORCE_ADD) or key in valid:
            final.append(o.input_line)
        elif _is_open(key) and o.type == OverrideType.CHANGE:
            final.append("++" + o.input_line)
        else:
            raise _unknown_key_error(name, o, ordered)
    try:
        cfg = _compose(name, final, folder)
    except (HydraException, OmegaConfBaseException) as e:
        raise ValueError(f"config {name!r}: overrides {list(overrides)} cannot be applied: {e}") from None
    for o in parsed:
        if o.type == OverrideType.CHANGE and o.key_or_group in valid:
            _check_types(name, o, base, cfg)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing and not allow_missing:
        raise ValueError(
            f"config {name!r}: expected a value for {', '.join(missing)} (marked ???), found none; "
            f"pass it as an override, e.g. {missing[0]}=..."
        )
    return cfg


def load_config_from_args(argv: Sequence[str], default_name: str | None = None) -> tuple[DictConfig, ConfigArgs]:
    """parse_config_args + load_config; the config name is required unless `default_name` is given."""
    args = parse_config_args(argv)
    name = args.config_name or default_name
    if name is None:
        raise ValueError(f"-cn/--config-name: expected one of {list_configs(args.config_dir)}, found none")
    args.config_name = name
    return load_config(name, args.overrides, args.config_dir), args


def config_to_dict(cfg: DictConfig | ListConfig | dict) -> dict[str, Any]:
    """The resolved config as plain dicts/lists/numbers/strings (interpolations resolved, no `???` allowed)."""
    if isinstance(cfg, dict):
        return json.loads(json.dumps(cfg))
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise ValueError(f"config: expected every value resolved, {e}") from None


def config_hash(cfg: DictConfig | dict, exclude: Sequence[str] = HASH_EXCLUDE) -> str:
    """16 hex digits of sha256 over the canonical JSON of the resolved config minus `exclude` (dotted keys)."""
    data = config_to_dict(cfg)
    for key in exclude:
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def save_training_options(cfg: DictConfig | dict, run_dir: str | os.PathLike) -> Path:
    """Write the resolved config to `run_dir/training_options.json` atomically; returns the path."""
    path = Path(run_dir) / "training_options.json"
    text = json.dumps(config_to_dict(cfg), indent=2, allow_nan=False) + "\n"
    with atomic_write(path, "w") as f:
        f.write(text)
    return path
