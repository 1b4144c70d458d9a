"""`petdiff train -cn=NAME [key=value ...]`: train a model from a YAML experiment (also under torchrun)."""

from __future__ import annotations

import sys

from petdiff.training import config, distributed

USAGE = """usage: petdiff train -cn=NAME [-cd=DIR] [key=value ...]
       torchrun --standalone --nproc_per_node=N -m petdiff.train -cn=NAME [key=value ...]

Shipped experiments: {names}. Overrides use Hydra syntax, e.g. run.kimg=50 data.counts=[3e5,3e6]."""


def main(argv: list[str]) -> int:
    """Load the experiment config, join the process group (if under torchrun) and train."""
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE.format(names=", ".join(config.list_configs())))
        return 0
    try:
        cfg, _ = config.load_config_from_args(argv)
        info = distributed.init_distributed(cfg.run.device)
    except ValueError as exc:
        print(f"petdiff train: {exc}", file=sys.stderr)
        return 2
    from petdiff.training.loop import train  # heavy imports only once the arguments are valid

    try:
        train(cfg, info)
    except ValueError as exc:
        print(f"petdiff train: {exc}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    return 0
