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

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = len(self.data)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for batch_no in range(len(self)):
            take = order[batch_no * self.batch_size : (batch_no + 1) * self.batch_size]
            images = self.augmentation(self.data.images[take], generator)
            images = self.normalization(images)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, self.data.labels[take]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)
