"""Preemption-safe training: everything `fit` needs to continue after an epoch, in one atomically replaced file.

`state_dir/train_state.pt` holds the model, optimizer, LR-scheduler (and fp16 grad-scaler and weight average)
states, the epochs finished, their history rows, torch's RNG states and the caller's token. The loaders' shuffle
and augmentation of epoch e depend only on (seed, e), so a run resumed from it performs exactly the steps the
uninterrupted run would have: on the CPU its final weights are bit-identical.

The file is written with torch.save to a temp file and renamed over the old one (synthgap.io.atomic_path), so a kill
leaves either the previous state or the new one. It is read only with `torch.load(weights_only=True)`: everything in
it is a tensor or a plain container of numbers and strings, and nothing else is unpickled. A state that cannot be
read, or does not fit the training at hand, is reported in one warning line and deleted; one with another token (a
different training) is ignored without a word and replaced by the first save.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthgap.errors import warn
from synthgap.io import atomic_path

STATE_FILE = "train_state.pt"
FORMAT = 2  # bump when the layout changes: an older file is then ignored with a warning, never misread
KEYS = frozenset(
    {
        "format",
        "token",
        "epoch",
        "epochs",
        "steps_per_epoch",
        "trainable",
        "history",
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "average",
        "cpu_rng",
        "cuda_rng",
    }
)


@dataclass(frozen=True)
class Resumed:
    """What a restored state brings besides the objects it loaded into: the epochs done and their history rows."""

    epoch: int
    history: list[dict[str, float]]


@dataclass
class TrainingParts:
    """The objects whose state a training run carries from one epoch to the next."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    device: torch.device
    average: Any = None  # the loop's WeightAverage, when the recipe keeps one

    def trainable(self) -> list[str]:
        return [name for name, p in self.model.named_parameters() if p.requires_grad]


class TrainState:
    """The state file of one training run of `epochs` epochs of `steps_per_epoch` steps in `folder`, valid only for
    the same `token` (which names the training: e.g. its model-cache key).

    Only a state that `writes` saves, removes and discards the file (and warns about it): in a run of several
    processes, the main one; the others only read it to resume where it does."""

    def __init__(
        self, folder: Path, token: str | None, *, epochs: int, steps_per_epoch: int, writes: bool = True
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STATE_FILE
        self.token = token
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.writes = writes

    def save(self, parts: TrainingParts, history: list[dict[str, float]]) -> None:
        """Replace the file with the state after the epochs in `history` (one row each)."""
        if not self.writes:
            return
        state = {
            "format": FORMAT,
            "token": self.token,
            "epoch": len(history),
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "trainable": parts.trainable(),
            "history": [dict(row) for row in history],
            "model": parts.model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(),
            "scaler": parts.scaler.state_dict() if parts.scaler is not None else {},
            "average": parts.average.state_dict() if parts.average is not None else {},
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if parts.device.type == "cuda" else [],
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def restore(self, parts: TrainingParts) -> Resumed | None:
        """Load a saved state of this training into `parts` and return where it stopped; None (nothing changed) when
        there is none, it has another token, or it cannot be used."""
        if self.writes:
            self._remove_temp_files()  # left by a kill during a save
        state = self._read()
        if state is None or state["token"] != self.token:
            return None
        problem = self._mismatch(state, parts)
        if problem is None:
            try:  # validates the parameter groups before it changes anything
                parts.optimizer.load_state_dict(state["optimizer"])
            except (ValueError, KeyError) as exc:
                problem = f"its optimizer state does not fit ({exc})"
        if problem is not None:
            self._discard(f"is not used: {problem}")
            return None
        parts.model.load_state_dict(state["model"], strict=True)
        parts.scheduler.load_state_dict(state["scheduler"])
        if parts.scaler is not None and state["scaler"]:
            parts.scaler.load_state_dict(state["scaler"])
        if parts.average is not None:
            parts.average.load_state_dict(state["average"])
        torch.set_rng_state(state["cpu_rng"])
        if parts.device.type == "cuda" and len(state["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return Resumed(state["epoch"], [dict(row) for row in state["history"]])

    def remove(self) -> None:
        """Delete the state (the training finished, or diverged and must not be resumed into the same divergence)."""
        if not self.writes:
            return
        self.path.unlink(missing_ok=True)
        self._remove_temp_files()

    def _read(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, damaged, or holding objects weights_only refuses to unpickle
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self._discard(f"cannot be read ({type(exc).__name__}{': ' + detail if detail else ''})")
            return None
        if not isinstance(state, dict) or set(state) != KEYS or state["format"] != FORMAT:
            self._discard(f"is not a synthgap training state (format {FORMAT})")
            return None
        return state

    def _discard(self, why: str) -> None:
        """One warning line, and the file goes: a restart before the next save does not warn about it again."""
        if self.writes:
            warn(f"training state {self.path} {why}; training starts afresh")
            self.remove()

    def _mismatch(self, state: dict[str, Any], parts: TrainingParts) -> str | None:
        """Why a state with the right token still cannot continue this training (None when it can)."""
        if (state["epochs"], state["steps_per_epoch"]) != (self.epochs, self.steps_per_epoch):
            return (
                f"it was saved for {state['epochs']} epochs of {state['steps_per_epoch']} steps, "
                f"this training has {self.epochs} of {self.steps_per_epoch}"
            )
        if not (0 < state["epoch"] < self.epochs and len(state["history"]) == state["epoch"]):
            return f"it records {state['epoch']} finished epochs and {len(state['history'])} history rows"
        if bool(state["average"]) != (parts.average is not None):
            return "it was saved with another weight average setting"
        if state["trainable"] != parts.trainable():
            return "its trainable parameters differ from this model's"
        saved, current = state["model"], parts.model.state_dict()
        if saved.keys() != current.keys():
            return "its model has other parameters than this one"
        for key, tensor in current.items():
            if saved[key].shape != tensor.shape or saved[key].dtype != tensor.dtype:
                there, here = (f"{tuple(t.shape)} {t.dtype}" for t in (saved[key], tensor))
                return f"{key} is {there} there, {here} here"
        return None

    def _remove_temp_files(self) -> None:
        for tmp in self.folder.glob(f".{STATE_FILE}.*.tmp"):
            tmp.unlink(missing_ok=True)
