"""The work of a generation run as pure data: items (one per image), fixed batches, and the shard's share of them.

Determinism rests on three choices:
- an image's seed is a hash of (base seed, class id, index), never a position in a loop;
- batches are cut from the whole run's item list (class-major), so a batch holds the same images whatever the shard
  count, and a shard takes whole batches (round-robin): batched arithmetic is then identical in any sharding;
- on resume a batch with any image missing is run again whole (only its missing images are written), for the same
  reason. The cost is at most one batch per shard.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synthgap.errors import SynthgapError
from synthgap.generate.classes import ClassInfo

if TYPE_CHECKING:
    from synthgap.data.items import ImageItems


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based: ``--shard 0/8`` .. ``--shard 7/8``)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise SynthgapError(f"bad --shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/8")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 0 <= index < count:
            raise SynthgapError(f"bad --shard {text!r}: expected i/n with 0 <= i < n (shards are 0-based), e.g. 0/8")
        return cls(index, count)

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Item:
    """One image to make: class position and info, index within the class, seed, and (unCLIP) its source image."""

    label: int
    cls: ClassInfo
    index: int
    seed: int
    source: ImageItems | None = None  # the real image it starts from (one item)

    @property
    def file(self) -> str:
        """Path relative to the output folder: ``<folder>/<folder>_<index:05d>.png``."""
        return f"{self.cls.folder}/{self.cls.folder}_{self.index:05d}.png"


def image_seed(base_seed: int, class_id: str, index: int) -> int:
    """A 63-bit seed that depends only on (base seed, class id, index)."""
    digest = hashlib.sha256(f"{base_seed}/{class_id}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def text2img_items(classes: list[ClassInfo], per_class: int, base_seed: int) -> list[Item]:
    return [
        Item(label, cls, index, image_seed(base_seed, cls.id, index))
        for label, cls in enumerate(classes)
        for index in range(per_class)
    ]


def batches(items: list[Item], batch_size: int) -> list[list[Item]]:
    """Consecutive runs of `batch_size` items of the whole run (the last may be shorter)."""
    return [items[start : start + batch_size] for start in range(0, len(items), batch_size)]


def shard_batches(all_batches: list[list[Item]], shard: Shard) -> list[list[Item]]:
    """Round-robin over batches: balanced within one batch, and a function of the batch number only."""
    return all_batches[shard.index :: shard.count]


def runs_by_class(batch: list[Item]) -> list[tuple[str, list[tuple[int, Item]]]]:
    """A batch's (position, item) pairs grouped by class id, in batch order: one pipeline call per class where each
    class has its own LoRA."""
    groups: dict[str, list[tuple[int, Item]]] = {}
    for position, item in enumerate(batch):
        groups.setdefault(item.cls.id, []).append((position, item))
    return list(groups.items())
