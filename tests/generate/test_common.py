"""The batch loop every generator shares: images are written by one writer thread while the next batch is made, in
the same order and with the same bytes as written inline, and a failed write stops the run with its own error."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

from synthgap.generate import common
from synthgap.generate.classes import ClassInfo
from synthgap.generate.output import PARTS, OutputFolder, encode_png
from synthgap.generate.plan import Shard, batches, text2img_items

CLASSES = [ClassInfo(id=f"c{i}", name=f"class {i}", folder=f"c{i}") for i in range(3)]


def items_and_batches(batch_size=4):
    items = text2img_items(CLASSES, per_class=5, base_seed=0)
    return items, batches(items, batch_size)


def fake_images(batch, generators):
    """An image per item that depends on its seed only, as a pipeline's does."""
    return [
        Image.fromarray(np.random.default_rng(item.seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)) for item in batch
    ]


def describe(item):
    return {"class": item.cls.id, "index": item.index, "seed": item.seed}


def run(out, todo, make_images=fake_images):
    output = OutputFolder(out, Shard())
    output.open_part()
    try:
        return common.run_batches(output, todo, make_images, describe, total=15, done=0, progress=False)
    finally:
        output.close()


def part_lines(out):
    return (out / PARTS / f"{Shard().name}.jsonl").read_text().splitlines()


def test_the_writer_thread_writes_what_an_inline_write_would_in_the_same_order(tmp_path, monkeypatch):
    items, todo = items_and_batches()
    threads = set()
    write = OutputFolder.write

    def recording_write(self, item, image, description):
        threads.add(threading.current_thread().name)
        return write(self, item, image, description)

    monkeypatch.setattr(OutputFolder, "write", recording_write)
    assert run(tmp_path / "gen", todo) == 15
    assert threads and all(name.startswith("synthgap-writer") for name in threads)
    lines = [json.loads(line) for line in part_lines(tmp_path / "gen")]
    assert [line["file"] for line in lines] == [item.file for item in items]  # the plan's order
    for item, line in zip(items, lines, strict=True):
        expected = encode_png(fake_images([item], None)[0])
        assert (tmp_path / "gen" / item.file).read_bytes() == expected
        assert line["sha256"] == hashlib.sha256(expected).hexdigest()


def test_the_pipeline_runs_ahead_of_the_writer_by_a_bounded_number_of_batches(tmp_path, monkeypatch):
    _, todo = items_and_batches(batch_size=1)
    release = threading.Event()
    write = OutputFolder.write
    made = []
    ahead = []

    def held_write(self, item, image, description):
        if not release.is_set():  # the first write waits until the loop has run as far ahead as it may
            for _ in range(1000):
                if len(made) > common.WRITE_AHEAD_BATCHES:
                    break
                time.sleep(0.01)
            time.sleep(0.3)  # had the loop not stopped, it would have made more batches by now
            ahead.append(len(made))
            release.set()
        return write(self, item, image, description)

    def counting_images(batch, generators):
        made.append(batch)
        return fake_images(batch, generators)

    monkeypatch.setattr(OutputFolder, "write", held_write)
    assert run(tmp_path / "gen", todo, counting_images) == 15
    # the batch being written, then WRITE_AHEAD_BATCHES more waiting for the writer
    assert ahead == [common.WRITE_AHEAD_BATCHES + 1] and len(made) == 15


def test_a_failed_write_stops_the_run_with_its_error_and_keeps_what_was_written(tmp_path, monkeypatch):
    items, todo = items_and_batches()
    write = OutputFolder.write

    def failing_write(self, item, image, description):
        if item.index == 2 and item.cls.id == "c1":
            raise OSError(28, "No space left on device")
        return write(self, item, image, description)

    monkeypatch.setattr(OutputFolder, "write", failing_write)
    with pytest.raises(OSError, match="No space left on device"):
        run(tmp_path / "gen", todo)
    written = [json.loads(line)["file"] for line in part_lines(tmp_path / "gen")]
    failed = next(item.file for item in items if item.index == 2 and item.cls.id == "c1")
    assert written and failed not in written
    for file in written:  # every recorded image is complete, and nothing unrecorded lies around half-written
        assert (tmp_path / "gen" / file).is_file()
    assert not (tmp_path / "gen" / failed).exists()
    monkeypatch.setattr(OutputFolder, "write", write)
    unfinished = [batch for batch in todo if not all((tmp_path / "gen" / i.file).exists() for i in batch)]
    assert run(tmp_path / "gen", unfinished) > 0
    assert sorted(json.loads(line)["file"] for line in part_lines(tmp_path / "gen")) == sorted(i.file for i in items)
