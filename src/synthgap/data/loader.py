"""Batches from a uint8 image set: shuffle, augment and normalize whole batches at once.

On the CPU a batch is read, augmented and normalized in the training process. On a GPU (`on(device)`), the uint8
batch is read on the CPU into pinned memory and copied without blocking, and augmentation and normalization run on
the GPU: a quarter of the bytes of a float batch cross the bus. A reader thread reads each batch into pinned memory
(with pread where the set lies on disk in large rows) and queues its copy on a CUDA stream of its own while the
training thread is busy with the batch before
(`read_ahead`): two batches in flight at most, the same batches in the same order. A set small enough for a fraction
of the GPU's memory (of the run's share of the GPU) is copied there once and batches are cut from it on the GPU. The
decision reads the card's total memory, not its free memory, so a spec takes the same data path on every card of a
kind, whatever else runs beside it (`keeps_resident`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import Augmentation, Normalization, build_augmentation
from synthgap.errors import SynthgapError

RESIDENT_SHARE = 0.25  # a set is kept on the GPU when it needs at most this share of the run's GPU memory
RESIDENT_CHUNK = 4096  # images copied to the GPU at a time when a set is made resident


class TensorLoader:
    """Iterates (images float B×3×H×W, labels) batches for one epoch at a time.

    The shuffle and augmentation of epoch `e` depend only on (seed, e), so a resumed run sees the same batches
    (and on a GPU the same crops and flips: every random draw is made on the CPU).
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
        targets: torch.Tensor | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.normalization = normalization
        # without an augmentation, images stored larger than they are seen get the test view: the centre crop
        self.augmentation = augmentation or build_augmentation("none", data.view_size)
        self.shuffle = shuffle
        self.drop_last = drop_last and len(data) >= batch_size
        self.seed = seed
        self.channels_last = channels_last
        # per-image training targets yielded in place of the labels (N×K, e.g. a label column and a teacher's logits)
        if targets is not None and len(targets) != len(data):
            raise ValueError(f"{len(targets)} targets for {len(data)} images")
        self.targets = targets
        self.device = torch.device("cpu")
        self._resident: tuple[torch.Tensor, torch.Tensor] | None = None  # (images, labels) kept on the GPU
        self.share = (0, 1)  # (rank, processes): which share of every batch this process takes (`for_rank`)
        # read the next batch in a thread while this one is used; None: where it pays, on a GPU reading from the host
        self.read_ahead: bool | None = None

    def on(self, device: torch.device | str, *, resident: bool | None = None, gpu_share: float = 1.0) -> TensorLoader:
        """This loader delivering batches on `device`. On CUDA the set is kept in GPU memory when `resident` is
        True, or (None) when `keeps_resident` says so for a run with `gpu_share` of the GPU."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # "cuda" and "cuda:0" are one place: never copy twice
            device = torch.device("cuda", torch.cuda.current_device())
        if device == self.device:
            return self
        placed = copy.copy(self)
        placed.device = device
        placed._resident = None
        if device.type == "cuda":
            if resident is None:
                resident = keeps_resident(self.data.nbytes, total_memory(device), gpu_share=gpu_share)
            if resident:
                images, labels = _copy_to(self.data, device)
                placed._resident = (images, labels if self.targets is None else self.targets.to(device))
        return placed

    def for_rank(self, rank: int, processes: int) -> TensorLoader:
        """This loader as process `rank` of `processes` sees it: the same batches in the same order (one seeded
        shuffle for all), of which it takes every `processes`-th image, augmented with its own random stream."""
        if processes == 1:
            return self
        if self.batch_size % processes:
            raise SynthgapError(f"a batch of {self.batch_size} images cannot be split equally into {processes} shares")
        if not self.drop_last and self.num_samples % self.batch_size:
            raise SynthgapError(
                f"{self.num_samples} images end in a partial batch, which {processes} processes cannot share equally"
            )
        part = copy.copy(self)
        part.share = (rank, processes)
        return part

    @property
    def resident(self) -> bool | None:
        """Whether the set is kept in the device's memory; None on the CPU (where it always is)."""
        return None if self.device.type == "cpu" else self._resident is not None

    @property
    def num_samples(self) -> int:
        return len(self.data)

    def subset(self, positions: torch.Tensor) -> TensorLoader:
        """This loader over the images at `positions` only (same batches, normalization, device and residency)."""
        part = copy.copy(self)
        part.data = self.data.select(positions)
        part.targets = self.targets[positions] if self.targets is not None else None
        part.drop_last = self.drop_last and len(positions) >= self.batch_size
        part.device, part._resident = torch.device("cpu"), None
        return part.on(self.device, resident=self.resident)  # a part of a set takes the set's data path

    def __len__(self) -> int:
        return num_batches(self.num_samples, self.batch_size, self.drop_last)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        rank, processes = self.share
        # one process draws its crops from the shuffle's generator (as it always has); several each draw their own
        augmenting = (
            generator
            if processes == 1
            else torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 1_009 + rank + 1)
        )
        on_device = getattr(self.augmentation, "runs_on_device", False)
        # the order is drawn whole before the first batch, so reading ahead leaves `augmenting`'s draws as they were
        takes = (
            take[rank::processes]
            for take in batch_positions(self.num_samples, self.batch_size, self.drop_last, self.shuffle, generator)
        )
        reads_ahead = self.read_ahead
        if reads_ahead is None:
            reads_ahead = self.device.type == "cuda" and self._resident is None
        for images, labels in _read_ahead(self._batch, takes, self.device) if reads_ahead else map(self._batch, takes):
            if on_device or images.device.type == "cpu":
                images = self.augmentation(images, augmenting)
            else:  # a preset that only runs on the CPU: augment there, then move the batch back
                images = self.augmentation(images.cpu(), augmenting).to(self.device, non_blocking=True)
            if self.channels_last:  # convert while still uint8: a quarter of the bytes of the float batch
                images = images.contiguous(memory_format=torch.channels_last)
            yield self.normalization(images), labels  # elementwise: keeps the memory format

    def _batch(self, take: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images and labels at `take`, on the loader's device."""
        if self._resident is not None:
            on = take.to(self.device, non_blocking=True)
            return self._resident[0][on], self._resident[1][on]
        cuda = self.device.type == "cuda"
        labels = self.data.labels if self.targets is None else self.targets
        images, labels = self.data.gather(take, pin=cuda), labels[take]
        if cuda:  # read straight into pinned memory: the copy runs while the GPU is busy with the previous step
            images = images.to(self.device, non_blocking=True)
            labels = labels.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            images, labels = images.to(self.device), labels.to(self.device)
        return images, labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)


def _read_ahead(
    read: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], takes: Iterator[torch.Tensor], device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`read(take)` of every take in order, each made by one worker thread while the batch before it is used (one
    batch ahead). On CUDA the worker's non-blocking copies run on a stream of their own, and the consuming stream
    waits for that batch's copies (an event recorded after them), not for the next batch's. Stopping early waits for
    the one read in flight; a failed read is raised where its batch would have been yielded."""
    stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def worker_read(take: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.cuda.Event | None]:
        if stream is None:
            return read(take), None
        with torch.cuda.stream(stream):
            batch = read(take)
            copied = torch.cuda.Event()
            copied.record(stream)
        return batch, copied

    def ready(read_batch: tuple[tuple[torch.Tensor, torch.Tensor], torch.cuda.Event | None]):
        batch, copied = read_batch
        if copied is not None:
            current = torch.cuda.current_stream(device)
            current.wait_event(copied)
            for tensor in batch:
                tensor.record_stream(current)  # freed only once the consuming stream is done with it
        return batch

    with ThreadPoolExecutor(1, thread_name_prefix="synthgap-reader") as pool:
        pending: Future | None = None
        for take in takes:
            following = pool.submit(worker_read, take)
            if pending is not None:
                yield ready(pending.result())
            pending = following
        if pending is not None:
            yield ready(pending.result())


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
        views: tuple[torch.Tensor, ...] = (),
    ) -> None:
        self.features = features
        # for test-time augmentation: the features of each image's other views (a policy's views after the first)
        self.views = views
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last and len(labels) >= batch_size
        self.seed = seed

    def on(self, device: torch.device | str, *, resident: bool | None = None, gpu_share: float = 1.0) -> FeatureLoader:
        """Batches stay on the CPU (features are made there); the training step moves them. The residency arguments
        are those of `TensorLoader.on`, so a caller places either kind alike; they change nothing here."""
        return self

    @property
    def resident(self) -> None:
        return None  # never kept on the device

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def subset(self, positions: torch.Tensor) -> FeatureLoader:
        """This loader over the rows at `positions` only."""
        part = copy.copy(self)
        part.features, part.labels = self.features[positions], self.labels[positions]
        part.views = tuple(view[positions] for view in self.views)
        part.drop_last = self.drop_last and len(positions) >= self.batch_size
        return part

    def __len__(self) -> int:
        return num_batches(self.num_samples, self.batch_size, self.drop_last)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        for take in batch_positions(self.num_samples, self.batch_size, self.drop_last, self.shuffle, generator):
            yield self.features[take], self.labels[take]

    def view_batches(self, count: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """The other views' features, batch by batch in `epoch(0)`'s order (unshuffled loaders only); `count`: how
        many views the test-time augmentation needs besides the plain one."""
        if len(self.views) != count:
            raise ValueError(
                f"these features come with {len(self.views)} other test-time views, the test-time augmentation needs "
                f"{count}"
            )
        if self.shuffle:
            raise ValueError("the features of other views follow an unshuffled loader")
        for take in batch_positions(self.num_samples, self.batch_size, self.drop_last, False, torch.Generator()):
            yield tuple(view[take] for view in self.views)


def keeps_resident(nbytes: int, total: int, *, gpu_share: float = 1.0, resident: bool | None = None) -> bool:
    """Whether a run keeps `nbytes` of images in the memory of a GPU of `total` bytes, of which it has `gpu_share`:
    `resident` when set, else (auto) when they need at most `RESIDENT_SHARE` of its share. Total memory, not free
    memory: the free memory depends on what else runs on the card at that moment, and the data path would too."""
    if not 0.0 < gpu_share <= 1.0:
        raise ValueError(f"gpu_share must be in (0, 1], got {gpu_share}")
    if resident is not None:
        return resident
    return nbytes <= RESIDENT_SHARE * gpu_share * total


def run_residency(
    device: torch.device, loaders: Iterable[object], *, resident: bool | None = None, gpu_share: float = 1.0
) -> bool | None:
    """One decision for every image set a run reads (training and test set together: `keeps_resident` of their
    summed size), so all of them stay on the GPU or none does; None off CUDA, where nothing is kept on a device."""
    if device.type != "cuda":
        return None
    nbytes = sum(loader.data.nbytes for loader in loaders if isinstance(loader, TensorLoader))
    return keeps_resident(nbytes, total_memory(device), gpu_share=gpu_share, resident=resident)


def total_memory(device: torch.device) -> int:
    """Bytes of memory of the GPU `device`."""
    return torch.cuda.get_device_properties(device).total_memory


def _copy_to(data: ImageTensors, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The set's images and labels on `device`, copied in chunks (never the whole set in host memory at once)."""
    h, w = data.stored_size
    images = torch.empty((len(data), 3, h, w), dtype=torch.uint8, device=device)
    for start in range(0, len(data), RESIDENT_CHUNK):
        part = torch.arange(start, min(start + RESIDENT_CHUNK, len(data)))
        images[start : start + len(part)] = data.gather(part).to(device)
    return images, data.labels.to(device)


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def batch_positions(
    n: int, batch_size: int, drop_last: bool, shuffle: bool, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for batch_no in range(num_batches(n, batch_size, drop_last)):
        yield order[batch_no * batch_size : (batch_no + 1) * batch_size]
