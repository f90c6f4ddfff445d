"""Per-layer activations of a student, read through forward hooks placed by the family's layer map.

Where a layer's output is read. The output of layer n is what layer n + 1 reads: a forward *pre*-hook on the first
module of layer n + 1 (the first module name of its entry in the layer map); the last layer's output is the output
of its last module (the classifier's logits). This is the layer's output for every family, read from the map alone:

- ResNets: a conv layer's output is after its BatchNorm and ReLU, and a block's last conv layer (where the residual
  is added) yields the block's output after the addition and the ReLU. Hooking the *last* module of each map entry
  instead would read a BatchNorm before its ReLU and residual, and for the layers that list a shortcut
  (``layer2.0.downsample`` with layer 7) the projected block *input*. Layer 1 (the stem) is read after the max-pool,
  layer L − 1 after the global average pool (the features `fc` reads), layer L are the logits.
- ViTs: layer 1 is the embedded tokens (class token and positions added), layer k the tokens after `blocks.{k-2}`,
  layer L − 1 the tokens before the final norm, layer L the logits.

Hooks compute what the caller asks for (`reduce`) while the forward pass runs, so no activation outlives its layer
(nor can an in-place operation further on change what was read).

Pooling to one vector per image (`pool`): conv maps B×C×H×W are averaged over H×W; token tensors B×T×D are averaged
over all T tokens, class token included (at layer 1 the class token is the same learned vector for every image, so
the class token alone would carry nothing; the mean over tokens is defined the same way at every layer); B×D tensors
are kept as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.models import LayerMap
from synthgap.progress import track

Reduce = Callable[[torch.Tensor], Any]  # one layer's activation (batch first) -> what is kept of it


def pool(activation: torch.Tensor) -> torch.Tensor:
    """One vector per image: mean over H×W of a conv map, mean over the tokens of a B×T×D tensor, B×D unchanged."""
    if activation.dim() == 4:
        return activation.float().mean(dim=(2, 3))
    if activation.dim() == 3:
        return activation.float().mean(dim=1)
    if activation.dim() == 2:
        return activation.float()
    raise SynthgapError(f"cannot pool an activation of shape {tuple(activation.shape)} to one vector per image")


def tap_points(model: nn.Module, layer_map: LayerMap) -> dict[int, tuple[str, str]]:
    """{layer: (module name, "input" | "output")}: where each layer's output is read (see the module docstring)."""
    modules = dict(model.named_modules())
    last = len(layer_map)
    points: dict[int, tuple[str, str]] = {}
    for n in range(1, last + 1):
        entry, side = (layer_map[n + 1], "input") if n < last else (layer_map[last], "output")
        names = [name for name in entry if name in modules]  # bare parameters (a ViT's cls_token) are no modules
        if not names:
            raise SynthgapError(f"layer {n + 1 if n < last else n} of the layer map lists no module to hook")
        points[n] = (names[0] if side == "input" else names[-1], side)
    return points


class LayerTaps:
    """Hooks on `model` that hand every layer's output to `reduce` during each forward pass (use as a context).

    ``taps(images, reduce)`` runs the model and returns {layer: reduce(output of that layer)}, layers 1..L.
    """

    def __init__(self, model: nn.Module, layer_map: LayerMap) -> None:
        self.model = model
        self.points = tap_points(model, layer_map)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._reduce: Reduce | None = None
        self._kept: dict[int, Any] = {}

    def __enter__(self) -> LayerTaps:
        modules = dict(self.model.named_modules())
        for layer, (name, side) in self.points.items():
            module = modules[name]
            if side == "input":
                handle = module.register_forward_pre_hook(self._pre_hook(layer))
            else:
                handle = module.register_forward_hook(self._hook(layer))
            self._handles.append(handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _keep(self, layer: int, activation: torch.Tensor) -> None:
        if self._reduce is None:  # the model ran outside `taps(...)`: nothing to read
            return
        if layer in self._kept:
            name, _ = self.points[layer]
            raise SynthgapError(f"layer {layer}: module {name!r} ran twice in one forward pass; cannot read its output")
        self._kept[layer] = self._reduce(activation.detach())

    def _pre_hook(self, layer: int) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            self._keep(layer, args[0])

        return hook

    def _hook(self, layer: int) -> Callable:
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            self._keep(layer, output)

        return hook

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, reduce: Reduce) -> dict[int, Any]:
        if not self._handles:
            raise RuntimeError("LayerTaps must be entered (with LayerTaps(...) as taps) before use")
        self._reduce, self._kept = reduce, {}
        try:
            self.model(images)
            kept = self._kept
        finally:
            self._reduce, self._kept = None, {}
        missing = sorted(set(self.points) - set(kept))
        if missing:
            raise SynthgapError(f"layers {missing} produced no output in a forward pass (hooks never ran)")
        return dict(sorted(kept.items()))


def pooled_features(
    model: nn.Module,
    layer_map: LayerMap,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device,
    desc: str = "features",
    progress: bool = False,
) -> dict[int, torch.Tensor]:
    """{layer: N×D float32 CPU tensor}: every image's pooled output of every layer, batches in order.

    Only pooled vectors are kept (at most a few thousand numbers per image and layer); each batch's full activations
    are dropped as soon as its forward pass ends.
    """
    model.eval()
    parts: dict[int, list[torch.Tensor]] = {}
    with LayerTaps(model, layer_map) as taps:
        for images, _ in track(batches, desc=desc, unit="batch", enabled=progress, leave=False):
            for layer, vectors in taps(images.to(device), lambda a: pool(a).cpu()).items():
                parts.setdefault(layer, []).append(vectors)
    return {layer: torch.cat(chunks) for layer, chunks in parts.items()}
