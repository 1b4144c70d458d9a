"""Training infrastructure: LR schedule, EMA, checkpoints, run folders, statistics, DDP helpers, signals, configs.

Import the submodules directly (e.g. `from petdiff.training.ema import EMA`); this package imports nothing
eagerly so that `petdiff.training.config` (Hydra) is only loaded when needed.
"""
