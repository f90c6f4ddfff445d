"""Model stitching: one model's layers 1..N joined to another's layers N+1..L by a small trainable layer.

A stitch maps the packed features of one family prefix (`ModelFamily.split`) onto what the receiving model's suffix
expects at the same cut. Each packed part gets its own map: a feature map (C×H×W: a ResNet's activation, and its
block input at a cut inside a residual block) a BatchNorm and a 1×1 convolution; a token sequence (T×D: a ViT) a
linear map of every token. The stitch starts from the least-squares map between the two models' features on the same
images, so stitching a model to itself starts as (nearly) the identity and any penalty measured is the stitch's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from synthgap.errors import SynthgapError
from synthgap.models.split import pack, unpack

RIDGE = 1e-3  # relative ridge of the least-squares start: a rank-deficient feature set still gives a finite map
FIT_ROWS = 200_000  # feature vectors (positions or tokens) the least-squares start is fitted on, at most


class PartMap(nn.Module):
    """The stitch of one packed part: (BatchNorm +) a map over the channel / embedding axis."""

    def __init__(self, shape: torch.Size) -> None:
        super().__init__()
        self.shape = tuple(shape)
        if len(self.shape) == 3:  # C×H×W
            channels = self.shape[0]
            self.norm: nn.Module = nn.BatchNorm2d(channels)
            self.map: nn.Module = nn.Conv2d(channels, channels, kernel_size=1)
        elif len(self.shape) == 2:  # T×D tokens
            self.norm = nn.Identity()
            self.map = nn.Linear(self.shape[1], self.shape[1])
        else:
            raise SynthgapError(f"a stitch maps C×H×W feature maps or T×D tokens, got a part of shape {self.shape}")

    @property
    def channels(self) -> int:
        return self.shape[0] if len(self.shape) == 3 else self.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.map(self.norm(x))

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """Every position (C×H×W) or token (T×D) of a batch of this part as a row of its channels."""
        return x.movedim(1, -1).reshape(-1, self.channels) if len(self.shape) == 3 else x.reshape(-1, self.channels)

    @torch.no_grad()
    def start_from(self, source: torch.Tensor, target: torch.Tensor) -> None:
        """Set the norm to the source part's statistics and the map to the least-squares fit of the target part
        from the normalised source part (ridge `RIDGE` relative to the mean eigenvalue)."""
        rows = self.rows(source.float())
        if isinstance(self.norm, nn.BatchNorm2d):
            mean, var = rows.mean(0), rows.var(0, unbiased=False)
            self.norm.running_mean.copy_(mean)
            self.norm.running_var.copy_(var)
            rows = (rows - mean) / torch.sqrt(var + self.norm.eps)
        wanted = self.rows(target.float())
        picked = _sample_rows(rows.shape[0])
        x, y = rows[picked], wanted[picked]
        x_mean, y_mean = x.mean(0), y.mean(0)
        xc, yc = x - x_mean, y - y_mean
        gram = xc.T @ xc
        ridge = RIDGE * gram.diagonal().mean().clamp_min(1e-12)
        eye = torch.eye(gram.shape[0], device=gram.device)
        weight = torch.linalg.solve(gram + ridge * eye, xc.T @ yc).T  # out × in
        bias = y_mean - weight @ x_mean
        self.map.weight.copy_(weight.reshape(self.map.weight.shape))
        self.map.bias.copy_(bias)


def _sample_rows(count: int) -> torch.Tensor:
    """At most `FIT_ROWS` row indices, evenly spread (deterministic: no RNG state is touched)."""
    if count <= FIT_ROWS:
        return torch.arange(count)
    return torch.linspace(0, count - 1, FIT_ROWS).long()


class Stitch(nn.Module):
    """Maps packed prefix features (B×D, parts of per-image `shapes`) to packed features of the same shapes."""

    def __init__(self, shapes: Sequence[torch.Size]) -> None:
        super().__init__()
        if not shapes:
            raise SynthgapError("a stitch needs the prefix's packed shapes: run the prefix on one batch first")
        self.shapes = [torch.Size(s) for s in shapes]
        self.parts = nn.ModuleList(PartMap(shape) for shape in self.shapes)

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        parts = unpack(packed, self.shapes)
        out_shapes: list[torch.Size] = []
        return pack([part(x) for part, x in zip(self.parts, parts, strict=True)], out_shapes)

    @torch.no_grad()
    def start_from(self, source: torch.Tensor, target: torch.Tensor) -> None:
        """The least-squares start from packed source features to packed target features of the same images."""
        if source.shape != target.shape:
            raise SynthgapError(f"stitched features differ in shape: {tuple(source.shape)} vs {tuple(target.shape)}")
        for part, x, y in zip(self.parts, unpack(source, self.shapes), unpack(target, self.shapes), strict=True):
            part.start_from(x, y)


class Stitched(nn.Module):
    """stitch → the receiving model's suffix, fed with a giving model's packed prefix features."""

    def __init__(self, stitch: Stitch, suffix: nn.Module) -> None:
        super().__init__()
        self.stitch = stitch
        self.suffix = suffix

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        return self.suffix(self.stitch(packed))


def packed_shapes(prefix: nn.Module) -> list[torch.Size]:
    """The per-image shapes of the parts a family prefix packs, which it records (`shapes`) at every forward."""
    shapes = getattr(prefix, "shapes", None)
    if not shapes:
        raise SynthgapError(f"cannot tell the packed shapes of a {type(prefix).__name__}: run it on one batch first")
    return list(shapes)
