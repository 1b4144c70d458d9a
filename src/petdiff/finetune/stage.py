"""One fine-tuning stage: Adam on random patches from the start weights, early stopping on fixed validation patches.

Every `eval_every` patches the network's loss on the validation patches (the same patches and, for the diffusion
loss, the same noise every time) is measured; the best weights are kept, and the stage stops when `patience`
validations in a row did not improve on the best by `min_delta` (relative), or after `kimg` thousand patches. The
data and loss generators are reseeded from (seed, patches seen) before every step, and a state (weights, optimiser,
best weights, history) is written atomically after every validation, so a stage stopped at any point and resumed
from its state ends with exactly the weights of one never stopped (on the same device).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from petdiff.finetune.patches import Patches, PatchSource
from petdiff.utils.io import atomic_write

STATE_FORMAT = "petdiff-finetune-stage"
Say = Callable[[str], None]


@dataclass(frozen=True)
class StageSettings:
    """The optimisation of one stage (resolved once, recorded in the sidecar)."""

    kimg: float = 4.0  # at most this many thousand patches
    batch: int = 8
    lr: float = 1e-4
    eval_every: int = 256  # patches between validations
    patience: int = 4  # validations without improvement before stopping
    min_delta: float = 1e-3  # relative improvement that counts
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


@dataclass
class StageResult:
    """The best weights, the validation losses before and at the best, the history, why it stopped."""

    best: dict[str, torch.Tensor]
    initial_loss: float
    best_loss: float
    best_nimg: int
    nimg: int
    stopped: str  # "early stopping" | "kimg" | "interrupted"
    history: list[dict[str, float | None]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready (without the weights)."""
        return {"initial_val_loss": self.initial_loss, "best_val_loss": self.best_loss, "best_kimg": self.best_nimg
                / 1000, "kimg": self.nimg / 1000, "stopped": self.stopped, "history": self.history}


def validation_loss(net: torch.nn.Module, loss_fn: Any, val: Patches, seed: int, device: torch.device,
                    batch: int = 16) -> float:
    """Mean loss over the validation patches with a generator seeded by `seed` (the same noise every call)."""
    was_training = net.training
    net.eval()
    gen = torch.Generator(device).manual_seed(seed)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, val.target.shape[0], batch):
            part = Patches(val.target[i:i + batch], val.condition[i:i + batch], val.labels[i:i + batch]).to(device)
            loss = loss_fn(net, part.target, condition=part.condition, class_labels=part.labels, generator=gen)
            total += float(loss.double().sum())
            count += loss.numel()
    net.train(was_training)
    return total / count


def run_stage(net: torch.nn.Module, loss_fn: Any, source: PatchSource, val: Patches, settings: StageSettings,
              state_path: Path, device: torch.device, resume: bool = False, say: Say = print,
              stop_after: int | None = None) -> StageResult:
    """Fine-tune `net` in place (see the module docstring); returns the best weights and the history.

    `stop_after` ends this invocation after that many validations as if interrupted (the state is written), which is
    how tests check that a resumed stage equals an uninterrupted one.
    """
    net.to(device).train().requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    data_gen, loss_gen = torch.Generator(), torch.Generator(device)
    total = round(settings.kimg * 1000)
    nimg, stale, history = 0, 0, []
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT or state.get("settings") != settings.as_dict():
            raise ValueError(f"--resume: {state_path}: expected the state of this stage with settings "
                             f"{settings.as_dict()}, found {state.get('settings')}")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["optimizer"])
        nimg, stale, history = int(state["nimg"]), int(state["stale"]), list(state["history"])
        best, initial, best_loss, best_nimg = state["best"], float(state["initial"]), float(state["best_loss"]), \
            int(state["best_nimg"])
        say(f"  resumed at {nimg / 1000:.3f} kimg (best validation loss {best_loss:.5g})")
    else:
        initial = best_loss = validation_loss(net, loss_fn, val, settings.seed, device)
        best, best_nimg = _copy(net), 0
        history.append({"kimg": 0.0, "val_loss": initial, "train_loss": None})
        say(f"  validation loss before: {initial:.5g}")
    evals, train_losses = 0, []
    stopped = "kimg"
    while nimg < total and stale < settings.patience:
        base = (settings.seed * 1_000_003 + nimg) % (1 << 61)
        data_gen.manual_seed(2 * base)
        loss_gen.manual_seed(2 * base + 1)
        batch = source.draw(settings.batch, data_gen).to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net, batch.target, condition=batch.condition, class_labels=batch.labels, generator=loss_gen)
        loss.mean().backward()
        for p in net.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()
        nimg += settings.batch
        train_losses.append(float(loss.detach().mean()))
        if nimg % settings.eval_every < settings.batch or nimg >= total:
            val_loss = validation_loss(net, loss_fn, val, settings.seed, device)
            improved = val_loss < best_loss * (1 - settings.min_delta)
            if val_loss < best_loss:
                best, best_loss, best_nimg = _copy(net), val_loss, nimg
            stale = 0 if improved else stale + 1
            history.append({"kimg": nimg / 1000, "val_loss": val_loss,
                            "train_loss": sum(train_losses) / len(train_losses)})
            train_losses = []
            say(f"  kimg {nimg / 1000:<7.3f} validation loss {val_loss:.5g}{' (best)' if best_nimg == nimg else ''}")
            _save(state_path, net, opt, nimg, stale, history, best, initial, best_loss, best_nimg, settings)
            evals += 1
            if stop_after is not None and evals >= stop_after and nimg < total and stale < settings.patience:
                stopped = "interrupted"
                break
    if stale >= settings.patience:
        stopped = "early stopping"
    net.load_state_dict(best)
    net.eval().requires_grad_(False)
    return StageResult(best, initial, best_loss, best_nimg, nimg, stopped, history)


def _copy(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


def _save(path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, nimg: int, stale: int, history: list,
          best: dict, initial: float, best_loss: float, best_nimg: int, settings: StageSettings) -> None:
    """The stage's state, atomically (loadable with torch.load(weights_only=True))."""
    state = {"format": STATE_FORMAT, "net": _copy(net), "optimizer": opt.state_dict(), "nimg": nimg, "stale": stale,
             "history": history, "best": best, "initial": initial, "best_loss": best_loss, "best_nimg": best_nimg,
             "settings": settings.as_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
