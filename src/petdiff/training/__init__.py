"""Training infrastructure: LR schedule, EMA, checkpoints, run folders, statistics, DDP helpers, signals, configs.

Import the submodules directly; this package imports nothing eagerly, so Hydra (config.py) loads only when used.
How a loop composes them (one step = `batch` images over all ranks):

    cfg, _ = config.load_config_from_args(argv)            # -cn=NAME key=value ...
    info = distributed.init_distributed(cfg.run.device)    # rank 0 of 1 without torchrun
    run_dir = rundir.make_run_dir(cfg.run.run_dir, desc)   # rank 0; config.save_training_options(cfg, run_dir)
    sampler = InfiniteSampler(len(data), info.rank, info.world_size, seed=cfg.run.seed)
    ema, lr = EMA(net, **cfg.ema), LRSchedule(cfg.run.kimg, **cfg.optimizer minus betas/eps)
    with signals.stop_on_signals() as stop:
        ... set_learning_rate(opt, lr(nimg / 1000)); opt.step(); ema.update(net, nimg, batch); nimg += batch
        ... tick: stats.TickStats.reduce() -> StatsLog.write; checkpoint.save_network / save_training_state
        ... if distributed.any_rank(stop.requested, info.device): save a state and exit 0
"""
