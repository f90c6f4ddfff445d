"""What both generators share: the result record and the resumable batch loop."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from synthgap.generate.models import ResolvedModel, scheduler_name
from synthgap.generate.output import Describe, OutputFolder
from synthgap.generate.plan import Item, Shard, batches, shard_batches
from synthgap.progress import progress_bar

if TYPE_CHECKING:
    import torch
    from PIL import Image

MakeImages = Callable[[list[Item], list["torch.Generator"]], Sequence["Image.Image"]]


@dataclass(frozen=True)
class GenerationResult:
    """What one `synthgap generate` call did. `manifest` is set once every shard's images exist."""

    out: Path
    shard: Shard
    written: int  # images written by this call
    already_done: int  # images of this shard found done (a resumed run)
    shard_images: int  # images assigned to this shard
    total_images: int  # images of the whole run
    manifest: Path | None
    seconds: float

    def summary(self) -> str:
        state = f"manifest {self.manifest}" if self.manifest else "other shards still pending (no manifest yet)"
        return (
            f"shard {self.shard}: {self.written} images written, {self.already_done} already done, "
            f"{self.shard_images} in this shard of {self.total_images} ({self.seconds:.0f} s); {state}"
        )


def pending(output: OutputFolder, shard_batches: list[list[Item]]) -> tuple[list[list[Item]], int]:
    """Batches with at least one missing image (run again whole, see plan.py), and the count of done images."""
    todo = [batch for batch in shard_batches if not all(output.is_done(item) for item in batch)]
    done = sum(output.is_done(item) for batch in shard_batches for item in batch)
    return todo, done


def generators(items: list[Item]) -> list[torch.Generator]:
    """One CPU generator per image: its noise depends on its seed only, whatever the batch or the device."""
    import torch

    return [torch.Generator(device="cpu").manual_seed(item.seed) for item in items]


# Batches of images that may wait for the writer while the pipeline makes the next batch: enough to keep a GPU busy
# while a batch is encoded and written, few enough that a kill loses little (a lost image is regenerated on resume).
WRITE_AHEAD_BATCHES = 2


def run_batches(
    output: OutputFolder,
    todo: list[list[Item]],
    make_images: MakeImages,
    describe: Describe,
    *,
    total: int,
    done: int,
    progress: bool,
) -> int:
    """Generate each batch and write its missing images (with their manifest lines); returns images written.

    One writer thread encodes, hashes and writes the images (and their manifest lines, in the same order as ever)
    while the pipeline makes the next batch, so the device does not wait for PNG encoding and fsyncs. At most
    `WRITE_AHEAD_BATCHES` batches wait for it. When the pipeline stops (an error, Ctrl-C), the writer still writes
    the images it was given, as writing them inline would have; a write that fails stops the run with its error
    and the images still waiting are dropped (not done: the resume makes them again, with the same bytes)."""
    written = 0
    waiting: deque[Future] = deque()
    write_failed = False
    with progress_bar(total, initial=done, unit="img", desc=f"generate {output.shard}", enabled=progress) as bar:

        def settle(keep: int) -> None:
            nonlocal written, write_failed
            while len(waiting) > keep:
                try:
                    waiting.popleft().result()
                except BaseException:
                    write_failed = True
                    raise
                written += 1
                bar.update(1)

        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synthgap-writer")
        try:
            for batch in todo:
                images = make_images(batch, generators(batch))
                for item, image in zip(batch, images, strict=True):
                    if output.is_done(item):  # done before a kill; the batch only ran to keep its arithmetic identical
                        continue
                    waiting.append(writer.submit(output.write, item, image, describe(item)))
                settle(keep=WRITE_AHEAD_BATCHES * len(batch))
            settle(keep=0)
        finally:
            writer.shutdown(wait=True, cancel_futures=write_failed)
    return written


class ShardGenerator(Protocol):
    """What `generator_shard` needs of a generator (`Text2ImgGenerator`, `Img2ImgGenerator`, `UnclipGenerator`)."""

    out: Path
    config: Any  # its config: batch_size and previews are read

    def settings(self, classes: Sequence[Any]) -> dict[str, Any]: ...

    def load(self) -> None: ...

    def make_images(self, batch: list[Item], generators: list[torch.Generator]) -> Sequence[Image.Image]: ...

    def describe(self, item: Item) -> dict[str, Any]: ...


def generator_shard(
    generator: ShardGenerator, shard: Shard, classes: Sequence[Any], items: list[Item], *, progress: bool, start: float
) -> GenerationResult:
    """`generate_shard` for a generator's planned `items`: its folder, settings, batch size, pipeline and previews."""
    return generate_shard(
        generator.out,
        shard,
        generator.settings(classes),
        items,
        batch_size=generator.config.batch_size,
        load=generator.load,
        make_images=generator.make_images,
        describe=generator.describe,
        previews=generator.config.previews,
        progress=progress,
        start=start,
    )


def generate_shard(
    out: Path,
    shard: Shard,
    settings: dict[str, Any],
    items: list[Item],
    *,
    batch_size: int,
    load: Callable[[], None],
    make_images: MakeImages,
    describe: Describe,
    previews: bool,
    progress: bool,
    start: float,
) -> GenerationResult:
    """The steps every generator shares once its items are planned: this shard's fixed batches, the same settings as
    any earlier run into `out`, the work left, generation, and the merged manifest once every shard is done."""
    mine = shard_batches(batches(items, batch_size), shard)
    output = OutputFolder(out, shard)
    output.check_settings(settings)
    output.open_part()
    try:
        todo, done = pending(output, mine)
        written = 0
        if todo:  # the pipeline is loaded only when there is work: a finished shard just merges
            load()
            written = run_batches(
                output, todo, make_images, describe, total=sum(map(len, mine)), done=done, progress=progress
            )
    finally:
        output.close()
    manifest = output.finish(items, describe, previews=previews)
    return GenerationResult(
        out, shard, written, done, sum(map(len, mine)), len(items), manifest, time.perf_counter() - start
    )


def describe_common(item: Item) -> dict[str, Any]:
    """The manifest fields every generator writes for an image."""
    return {
        "class": item.cls.id,
        "class_name": item.cls.name,
        "label": item.label,
        "index": item.index,
        "seed": item.seed,
    }


def describe_sampling(config: Any, model: ResolvedModel) -> dict[str, Any]:
    """The sampler's manifest fields, the same for every image of a run: model, revision, scheduler, steps,
    guidance, size and negative prompt (`config` is a generator's config; each has these fields)."""
    return {
        "negative_prompt": config.negative_prompt,
        "model": config.model,
        "revision": model.revision,
        "scheduler": scheduler_name(config.scheduler, model.path),
        "steps": config.steps,
        "guidance": config.guidance,
        "size": config.size,
    }
