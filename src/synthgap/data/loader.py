"""Batches from an in-memory uint8 image tensor: shuffle, augment and normalize whole batches at once."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from synthgap.data.cache import ImageTensors
from synthgap.data.transforms import Augmentation, NoAugmentation, Normalization


class TensorLoader:
    """Iterates (images float B×3×H×W, labels) batches for one epoch at a time.

    The shuffle and augmentation of epoch `e` depend only on (seed, e), so a resumed run sees the same batches.
    """

    def __init__(
        self,
        data: ImageTensors,
        *,
        batch_size: int,
        normalization: Normalization,
        augmentation: Augmentation | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.normalization = normalization
        self.augmentation = augmentation or NoAugmentation()
        self.shuffle = shuffle
        self.drop_last = drop_last and len(data) >= batch_size
        self.seed = seed
        self.channels_last = channels_last

    @property
    def num_samples(self) -> int:
        return len(self.data)

    def __len__(self) -> int:
        return num_batches(self.num_samples, self.batch_size, self.drop_last)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        for take in batch_positions(self.num_samples, self.batch_size, self.drop_last, self.shuffle, generator):
            images = self.augmentation(self.data.images[take], generator)
            if self.channels_last:  # convert while still uint8: a quarter of the bytes of the float batch
                images = images.contiguous(memory_format=torch.channels_last)
            yield self.normalization(images), self.data.labels[take]  # elementwise: keeps the memory format

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)


class FeatureLoader:
    """Batches of precomputed float features (e.g. a frozen prefix's outputs) with the same shuffling rules."""

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        self.features = features
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last and len(labels) >= batch_size
        self.seed = seed

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return num_batches(self.num_samples, self.batch_size, self.drop_last)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        for take in batch_positions(self.num_samples, self.batch_size, self.drop_last, self.shuffle, generator):
            yield self.features[take], self.labels[take]


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def batch_positions(
    n: int, batch_size: int, drop_last: bool, shuffle: bool, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for batch_no in range(num_batches(n, batch_size, drop_last)):
        yield order[batch_no * batch_size : (batch_no + 1) * batch_size]
