"""The training loop (EDM, Karras et al. 2022, as in NVlabs/edm's training_loop.py, made resumable).

One step: `run.batch` images over all ranks, split into rounds of `run.batch_gpu` per rank
(gradient accumulation); Adam with linear warm-up + cosine LR; non-finite gradients zeroed; EMA
with half-life in images. Every `run.tick` kimg: statistics; every `snapshot_ticks` ticks: an EMA
network snapshot (safetensors + JSON); every `state_dump_ticks` ticks: a training state from
which the run resumes exactly. SIGINT/SIGTERM finish the step, write both, and return.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from petdiff.diffusion.loss import EDMLoss
from petdiff.diffusion.residual_loss import RegressionLoss, ResidualConsistencyLoss, ResidualLoss
from petdiff.models import AugmentPipe, build_network, count_parameters
from petdiff.models.count_level import CountLevelLoss
from petdiff.models.presets import network_config
from petdiff.training import checkpoint, config, distributed, rundir, signals, stats
from petdiff.training.batches import make_batches
from petdiff.training.ema import EMA
from petdiff.training.schedule import LRSchedule, set_learning_rate

SIDECAR_DATA_KEYS = (
    "phantoms", "resolution", "counts", "fraction", "n_iter", "alpha", "random_contrast", "normalization", "target",
    "dose_labels", "pixel_size_mm", "context", "pixel_size_range_mm", "density_range", "min_density", "simulation",
)
# loss.kind → the role the trained network plays (written to the sidecar; inference pairs them up).
LOSS_ROLES = {"edm": "denoiser", "regression": "mean", "residual": "residual", "count_level": "count_level",
              "consistency": "residual"}  # consistency: a residual model distilled from loss.teacher
RESIDUAL_STD_BATCHES = 16  # batches over which the residual's standard deviation is measured at the start


def _batch_sizes(run: Any, world_size: int) -> tuple[int, int, int]:
    """(batch, per-rank batch, accumulation rounds), validated."""
    batch = int(run.batch)
    if batch < 1 or batch % world_size:
        raise ValueError(
            f"run.batch: expected a positive multiple of the number of processes {world_size}, found {batch}"
        )
    per_rank = batch // world_size
    batch_gpu = int(run.batch_gpu) if run.batch_gpu else per_rank
    if batch_gpu < 1 or per_rank % batch_gpu:
        raise ValueError(
            f"run.batch_gpu: expected a divisor of the per-process batch {per_rank}, found {run.batch_gpu}"
        )
    return batch, per_rank, per_rank // batch_gpu


def _network_architecture(cfg: DictConfig, label_dim: int) -> dict:
    """The network config (preset + overrides) adapted to the data: condition channel, labels, resolution."""
    overrides = config.config_to_dict(cfg.network.overrides) if cfg.network.overrides else {}
    arch = network_config(cfg.network.preset, **overrides)
    if cfg.data.mode == "images":
        arch["cond_channels"] = overrides.get("cond_channels", 0)
        arch["label_dim"] = label_dim
    if "img_resolution" not in overrides:
        arch["img_resolution"] = [int(cfg.data.resolution)] * 2
    arch["sigma_data"] = float(cfg.loss.sigma_data)
    return arch


def _loss_kind(cfg: DictConfig) -> str:
    """loss.kind (default 'edm'), validated."""
    kind = cfg.loss.get("kind") or "edm"
    if kind not in LOSS_ROLES:
        raise ValueError(f"loss.kind: expected one of {sorted(LOSS_ROLES)}, found {kind!r}")
    if kind != "edm" and cfg.data.mode != "pet":
        raise ValueError(f"loss.kind: {kind!r} needs data.mode=pet, found {cfg.data.mode!r}")
    return kind


def _snapshot_metadata(cfg: DictConfig, arch: dict, nimg: int, extra: dict | None = None) -> dict:
    """Sidecar keys that inference needs (docs/architecture.md, 'Snapshots')."""
    data = config.config_to_dict(cfg.data)
    sampling = config.config_to_dict(cfg.sampling)
    sampling.pop("network", None)
    return {
        "role": LOSS_ROLES[_loss_kind(cfg)],
        **(extra or {}),
        "mode": cfg.data.mode,
        "resolution": int(arch["img_resolution"][0]),
        "normalization": data.get("normalization", "quantitative"),
        "target": data.get("target", "full_dose"),
        "cond_channels": int(arch.get("cond_channels", 0)),
        "label_dim": int(arch.get("label_dim", 0)),
        "data": {k: data[k] for k in SIDECAR_DATA_KEYS if k in data},
        "sampling": sampling,
        "kimg": nimg / 1000,
        "config_hash": config.config_hash(cfg),
    }


def _resume_path(resume: str | None) -> Path | None:
    """A training-state file, or the latest one inside a run folder."""
    if not resume:
        return None
    path = Path(resume)
    if path.is_dir():
        latest = rundir.find_latest_state(path)
        if latest is None:
            raise ValueError(
                f"run.resume: expected a training-state-*.pt file or a run folder holding one, found none in {path}"
            )
        return latest
    if not path.is_file():
        raise ValueError(f"run.resume: expected a training-state-*.pt file or a run folder, found nothing at {path}")
    return path


def train(
    cfg: DictConfig, info: distributed.DistInfo | None = None, quiet: bool = False, max_ticks: int | None = None
) -> Path | None:
    """Run the experiment `cfg`; returns the run folder on rank 0 (None on other ranks).

    `max_ticks` stops after that many ticks of this invocation as if interrupted (state written),
    which is how tests check that an interrupted and resumed run equals an uninterrupted one.
    """
    info = info or distributed.init_distributed(cfg.run.device)
    device = info.device
    batch, per_rank, rounds = _batch_sizes(cfg.run, info.world_size)
    batch_gpu = per_rank // rounds
    total_nimg = round(float(cfg.run.kimg) * 1000)
    tick_nimg = max(1, round(float(cfg.run.tick) * 1000))
    resume = _resume_path(cfg.run.resume)

    # Per-rank generators for data simulation, loss noise (σ, n, augmentation) and dropout. They are reseeded
    # from (seed, rank, nimg) before every step, so a run resumed after any step (a tick boundary or a stop in
    # mid-tick) replays exactly what an uninterrupted run would have drawn, on every rank (a state file only
    # holds rank 0's RNG states, which a resume therefore does not need).
    data_gen, loss_gen = torch.Generator(device), torch.Generator(device)
    generators = {"data": data_gen, "loss": loss_gen}

    def reseed(nimg: int) -> None:
        """Derive this rank's generator seeds from the run seed, the rank and the images seen so far."""
        base = distributed.rank_seed(int(cfg.run.seed) + 1_000_003 * nimg, info.rank, info.world_size) % (1 << 61)
        data_gen.manual_seed(3 * base)
        loss_gen.manual_seed(3 * base + 1)
        torch.manual_seed(3 * base + 2)

    batches = make_batches(cfg.data, batch_gpu, device, info.rank, info.world_size, int(cfg.run.seed), data_gen)
    label_dim = int(getattr(getattr(batches, "dataset", None), "label_dim", 0)) if cfg.data.get("labels") else 0
    arch = _network_architecture(cfg, label_dim)
    net = build_network(arch, seed=int(cfg.run.seed)).to(device).train()
    teacher = _consistency_teacher(cfg, net, device) if _loss_kind(cfg) == "consistency" else None
    ema = EMA(net, halflife_kimg=float(cfg.ema.halflife_kimg), rampup_ratio=cfg.ema.rampup_ratio)
    opt = torch.optim.Adam(
        net.parameters(),
        lr=float(cfg.optimizer.lr_start),
        betas=tuple(cfg.optimizer.betas),
        eps=float(cfg.optimizer.eps),
    )
    lr_schedule = LRSchedule(
        total_kimg=float(cfg.run.kimg),
        lr_max=float(cfg.optimizer.lr_max),
        lr_start=float(cfg.optimizer.lr_start),
        lr_min=float(cfg.optimizer.lr_min),
        warmup=float(cfg.optimizer.warmup),
    )
    kind = _loss_kind(cfg)
    edm_loss = EDMLoss(
        P_mean=float(cfg.loss.P_mean), P_std=float(cfg.loss.P_std), sigma_data=float(cfg.loss.sigma_data)
    )
    loss_fn, role_meta = edm_loss, {}
    if kind == "regression":
        loss_fn = RegressionLoss()
    elif kind == "count_level":
        loss_fn = CountLevelLoss()
    elif kind == "residual":
        loss_fn, role_meta = _residual_loss(cfg, edm_loss, batches, device)
    elif kind == "consistency":
        loss_fn, role_meta = _consistency_loss(cfg, teacher, device)
    augment = config.config_to_dict(cfg.augment)
    augment_pipe = AugmentPipe(**augment) if float(augment.get("p", 0)) > 0 else None

    nimg = 0
    if resume is not None:
        state = checkpoint.restore_training_state(
            resume, net=net, ema=ema, optimizer=opt, sampler=getattr(batches, "sampler", None), generators=generators
        )
        nimg = int(state["nimg"])
    ddp = net
    if info.world_size > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)

    run_dir, removed = None, []
    run_ctx = contextlib.ExitStack()
    if info.is_main:
        desc = cfg.run.desc or f"{cfg.data.mode}-{cfg.network.preset}-r{int(cfg.data.resolution)}-b{batch}"
        run_dir = rundir.make_run_dir(cfg.run.run_dir, str(desc))
        run_ctx.enter_context(rundir.hold_run_dir(run_dir))
        # Temporaries of state writes that a SIGKILL cut short, in the folder this run resumes from.
        removed = rundir.clean_temporaries(resume.parent) if resume is not None else []
        config.save_training_options(cfg, run_dir)
        run_ctx.enter_context(stats.tee_output(run_dir / "log.txt"))
    distributed.barrier()

    with run_ctx, signals.stop_on_signals() as stop:
        say = (lambda *a: None) if quiet else distributed.print0
        say(
            f"petdiff train: {count_parameters(net) / 1e6:.2f} M parameters, batch {batch} "
            f"({info.world_size} process(es) x {rounds} round(s) x {batch_gpu}), {cfg.run.kimg} kimg, device {device}"
            + (f", resumed from {resume} at {nimg / 1000:.3f} kimg" if resume else "")
            + (f"\nremoved {len(removed)} stale temporary file(s) from {resume.parent}" if removed else "")
            + (f"\nrun folder: {run_dir}" if run_dir else "")
        )
        log = stats.StatsLog(run_dir) if run_dir else None
        tick = stats.TickStats(device)
        stream = iter(batches)
        # Tick boundaries are the multiples of tick_nimg, wherever this invocation started, so a resumed run
        # logs and saves at the same points as an uninterrupted one.
        tick_start_nimg, tick_start_time, data_time = nimg, time.perf_counter(), 0.0
        ticks_done = first_tick = nimg // tick_nimg

        def save(final: bool, previous_ticks: int) -> None:
            """EMA snapshot and training state on rank 0 (DDP keeps the weights identical on every rank)."""
            if not info.is_main:
                return
            kimg = nimg // 1000  # file names carry whole kimg, as in the reference

            def due(every: Any) -> bool:
                """Whether this tick crossed a multiple of `every` ticks."""
                return final or ticks_done // int(every) > previous_ticks // int(every)

            if due(cfg.run.snapshot_ticks):
                checkpoint.save_network(
                    run_dir / checkpoint.snapshot_name(kimg), ema.module, arch,
                    _snapshot_metadata(cfg, arch, nimg, role_meta),
                )
            if due(cfg.run.state_dump_ticks):
                checkpoint.save_training_state(
                    run_dir / checkpoint.training_state_name(kimg),
                    net=net,
                    ema=ema,
                    optimizer=opt,
                    nimg=nimg,
                    config=config.config_to_dict(cfg),
                    sampler=getattr(batches, "sampler", None),
                    generators=generators,
                )

        while nimg < total_nimg:
            reseed(nimg)
            set_learning_rate(opt, lr_schedule(nimg / 1000))
            opt.zero_grad(set_to_none=True)
            for r in range(rounds):
                t0 = time.perf_counter()
                images, condition, labels = next(stream)
                data_time += time.perf_counter() - t0
                sync = contextlib.nullcontext() if (r == rounds - 1 or ddp is net) else ddp.no_sync()
                with sync:
                    loss = loss_fn(
                        ddp,
                        images,
                        condition=condition,
                        class_labels=labels,
                        augment_pipe=augment_pipe,
                        generator=loss_gen,
                    )
                    tick.report("loss", loss.detach().mean(dim=(1, 2, 3)))
                    loss.sum().mul(1.0 / per_rank).backward()
            for p in net.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
            nimg += batch
            ema.update(net, nimg, batch)
            boundary = nimg // tick_nimg > ticks_done
            interrupted = stop.requested or (max_ticks is not None and nimg // tick_nimg - first_tick >= max_ticks)
            stop_now = distributed.any_rank(interrupted, device)
            if nimg >= total_nimg or stop_now or boundary:
                previous_ticks, ticks_done = ticks_done, nimg // tick_nimg
                elapsed = time.perf_counter() - tick_start_time
                kimg_done = (nimg - tick_start_nimg) / 1000
                tick.report("timing/sec_per_kimg", elapsed / max(kimg_done, 1e-9))
                tick.report("timing/data_fraction", data_time / max(elapsed, 1e-9))
                tick.report("lr", opt.param_groups[0]["lr"])
                tick.report("memory/cpu_gb", stats.cpu_memory_gb())
                for key, value in stats.gpu_memory_gb(device).items():
                    tick.report(f"memory/gpu_{key}", value)
                reduced = tick.reduce()
                if log is not None:
                    log.write(reduced, kimg=nimg / 1000)
                say(
                    f"tick {-(-nimg // tick_nimg):<4d} kimg {nimg / 1000:<8.3f} loss {reduced['loss']['mean']:<7.4f} "
                    f"± {reduced['loss']['std']:<7.4f} sec/kimg {reduced['timing/sec_per_kimg']['mean']:<8.1f} "
                    f"data {100 * reduced['timing/data_fraction']['mean']:4.1f}% "
                    f"lr {opt.param_groups[0]['lr']:.2e} cpu {reduced['memory/cpu_gb']['mean']:.2f} GiB"
                )
                final = nimg >= total_nimg or stop_now
                save(final, previous_ticks)
                tick_start_nimg, tick_start_time, data_time = nimg, time.perf_counter(), 0.0
                if stop_now:
                    say("petdiff train: stop requested; training state written, exiting")
                    break
        if log is not None:
            log.close()
        if info.world_size > 1:
            _check_ranks_in_sync(net, device, say)
    distributed.barrier()
    return run_dir


def _snapshot_of_role(option: str, path: str, role: str, kind: str, device: torch.device
                      ) -> tuple[torch.nn.Module, dict]:
    """(network, sidecar) of the snapshot an option names, refused unless its sidecar declares `role`."""
    meta = checkpoint.read_network_metadata(path)
    if meta.get("role") != role:
        raise ValueError(f"{option}: {path}: expected a {kind} snapshot (role {role!r}), "
                         f"found role {meta.get('role', 'denoiser')!r}")
    net, _ = checkpoint.load_network(path, build_network, device=device)
    return net, meta


def _residual_loss(cfg: DictConfig, edm: EDMLoss, batches: Any, device: torch.device) -> tuple[ResidualLoss, dict]:
    """The frozen mean network of loss.mean_network and the residual's std (loss.residual_std, or measured)."""
    path = cfg.loss.get("mean_network")
    if not path:
        raise ValueError("loss.mean_network: a residual model needs the snapshot of its regression network, found none")
    mean_net, meta = _snapshot_of_role("loss.mean_network", path, "mean", "regression", device)
    std = cfg.loss.get("residual_std")
    if not std:
        # Measured on the first batches of a fresh batch source (before any state is restored or the generators
        # are reseeded), so a resumed run measures the same value.
        stream = iter(batches)
        with torch.no_grad():
            residuals = []
            for _ in range(RESIDUAL_STD_BATCHES):
                images, condition, labels = next(stream)
                residuals.append(images - mean_net(condition, class_labels=labels))
        std = float(torch.cat(residuals).std())
    loss = ResidualLoss(mean_net, float(std), edm)
    mean_source = {"file": Path(path).name, "path": str(Path(path).resolve()),
                   **{key: meta.get(key) for key in ("kimg", "config_hash", "sha256")}}
    return loss, {"residual_std": float(std), "mean_network": mean_source}


def _consistency_teacher(cfg: DictConfig, net: torch.nn.Module, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """(teacher, its sidecar) of loss.teacher, a residual snapshot; the student `net` starts from its weights."""
    path = cfg.loss.get("teacher")
    if not path:
        raise ValueError("loss.teacher: consistency distillation needs the residual snapshot to distil, found none")
    teacher, meta = _snapshot_of_role("loss.teacher", path, "residual", "residual", device)
    try:
        net.load_state_dict(teacher.state_dict())
    except RuntimeError as exc:
        raise ValueError(f"loss.teacher: {path}: the network preset must match the teacher's architecture "
                         f"({str(exc).splitlines()[0]})") from None
    return teacher, meta


def _consistency_loss(cfg: DictConfig, teacher: tuple[torch.nn.Module, dict], device: torch.device
                      ) -> tuple[ResidualConsistencyLoss, dict]:
    """The distillation loss around the teacher, its frozen regression network (beside it, else where its training
    found it; sha256 checked) and its σ_r; the student's sidecar names the same regression network."""
    net, meta = teacher
    source = meta["mean_network"]
    found = checkpoint.find_regression_snapshot(Path(cfg.loss.teacher), source, require_hash=True)
    if found is None:
        raise ValueError(f"loss.teacher: its regression network {source['file']} (sha256 "
                         f"{str(source.get('sha256'))[:12]}…) is neither beside it nor at {source.get('path')}")
    mean_net, _ = checkpoint.load_network(found, build_network, device=device)
    loss = ResidualConsistencyLoss(mean_net, float(meta["residual_std"]), net,
                                   sigma_max=float(cfg.sampling.get("sigma_max") or 10.0))
    return loss, {"residual_std": float(meta["residual_std"]), "mean_network": source,
                  "teacher": {"file": Path(cfg.loss.teacher).name, "sha256": meta.get("sha256")}}


def _check_ranks_in_sync(net: torch.nn.Module, device: torch.device, say) -> None:
    """DDP must leave identical weights on every rank: compare per-tensor checksums across ranks."""
    local = torch.stack([p.detach().double().sum() for p in net.parameters()]).to(device)
    reference = local.clone()
    torch.distributed.broadcast(reference, src=0)
    differs = distributed.any_rank(not torch.equal(local, reference), device)
    if differs:
        raise RuntimeError("DDP: the ranks ended with different weights")
    say(f"weights identical on all {torch.distributed.get_world_size()} ranks")
