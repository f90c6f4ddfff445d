from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from synthgap.data import cache, decode, rowfile
from synthgap.data.cache import cache_key, load_images
from synthgap.data.decode import decode_image
from synthgap.data.sources import open_source
from synthgap.errors import BadImageError


def pil_rgb(path):
    """Reference decode of a 32x32 image: PIL → RGB → 3×H×W."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1)


def real_train(root):
    return open_source("cifake:real", "train", root)


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts calls of cache._decode_to_cache (the only place that decodes files)."""
    calls = []
    real = cache._decode_to_cache

    def spy(*args, **kwargs):
        calls.append(args[1].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "_decode_to_cache", spy)
    return calls


def test_images_and_labels_match_index(cifake_root, tmp_path):
    index = real_train(cifake_root)
    data = load_images(index, 32, cache_dir=tmp_path / "cache", progress=False)
    assert data.images.dtype == torch.uint8 and data.images.shape == (30, 3, 32, 32)
    np.testing.assert_array_equal(data.labels.numpy(), index.labels)
    for position in (0, 13, 29):
        np.testing.assert_array_equal(data.images[position].numpy(), pil_rgb(index.paths[position]))
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1


def test_second_call_does_not_decode(cifake_root, tmp_path, monkeypatch):
    index = real_train(cifake_root)
    first = load_images(index, 32, cache_dir=tmp_path, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(cache, "_decode_to_cache", fail)
    monkeypatch.setattr(decode, "decode_image", fail)
    second = load_images(real_train(cifake_root), 32, cache_dir=tmp_path, progress=False)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert second.classes == index.classes


@pytest.mark.parametrize("change", ["swap", "rewrite", "add"])
def test_changed_files_rebuild_cache(cifake_root, tmp_path, write_jpeg, decode_calls, change):
    index = real_train(cifake_root)
    load_images(index, 32, cache_dir=tmp_path, progress=False)
    old_key = cache_key(index, 32, tmp_path)
    target = index.paths[0]
    if change == "swap":  # other bytes of the same size under the old modification time (`cp -p`): ctime tells
        st = target.stat()
        data = bytearray(target.read_bytes())
        at = next(i for i in range(len(data) - 3, 0, -1) if data[i] < 0xFE and data[i - 1] != 0xFF)
        data[at] ^= 1  # a bit of the JPEG's entropy-coded data (no marker made or broken)
        target.write_bytes(bytes(data))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    elif change == "rewrite":
        Image.new("RGB", (32, 32), (200, 10, 10)).save(target, format="JPEG")  # far smaller than the noise JPEG
    else:
        write_jpeg(target.parent / "99.jpg", seed=5)
    new_index = real_train(cifake_root)
    assert cache_key(new_index, 32, tmp_path) != old_key
    data = load_images(new_index, 32, cache_dir=tmp_path, progress=False)
    assert len(decode_calls) == 2
    assert len(data) == len(new_index)
    if change == "rewrite":
        assert np.abs(data.images[0].numpy().astype(int) - np.array([200, 10, 10])[:, None, None]).max() <= 8


def test_a_moved_or_touched_copy_keeps_its_key_and_cache(cifake_root, tmp_path, decode_calls):
    """The key is the images' bytes: a copy elsewhere with new times (and a touched file) is the same data."""
    index = real_train(cifake_root)
    first = load_images(index, 32, cache_dir=tmp_path / "cache", progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(cifake_root, copy, copy_function=shutil.copy)  # new paths, new times
    st = index.paths[0].stat()
    os.utime(index.paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    for root in (cifake_root, copy):
        moved = real_train(root)
        assert cache_key(moved, 32, tmp_path / "cache") == first.key.removesuffix("-strict")
        again = load_images(moved, 32, cache_dir=tmp_path / "cache", progress=False)
        assert torch.equal(again.images, first.images)
    assert decode_calls == [index.name]
    assert len(list((tmp_path / "cache" / cache.KEYS).iterdir())) == 3  # one per version of the files seen


def test_skipped_images_are_named_as_the_copy_read_names_them(cifake_root, tmp_path):
    """With --skip-bad the cache names the images it skipped: a copy elsewhere (the same key) names its own files."""
    index = real_train(cifake_root)
    index.paths[3].write_bytes(b"not an image at all")
    copy = tmp_path / "copy"
    shutil.copytree(cifake_root, copy)
    for root in (cifake_root, copy, cifake_root):
        moved = real_train(root)
        data = load_images(moved, 32, cache_dir=tmp_path / "cache", skip_bad=True, workers=1, progress=False)
        assert data.skipped == [str(moved.paths[3])] and len(data) == len(moved) - 1
    assert cache_key(real_train(copy), 32, tmp_path / "cache") == cache_key(index, 32, tmp_path / "cache")


def test_a_key_found_while_an_image_could_not_be_read_is_not_remembered(cifake_root, tmp_path, monkeypatch):
    index = real_train(cifake_root)
    failing = index.paths[5]
    real = cache.file_digest

    def flaky(path, *args):
        if path == failing:
            raise OSError(5, "Input/output error")
        return real(path, *args)

    monkeypatch.setattr(cache, "file_digest", flaky)
    with_error = cache_key(index, 32, tmp_path)
    assert not (tmp_path / cache.KEYS).exists()  # a passing read error is not kept as the images' identity
    monkeypatch.setattr(cache, "file_digest", real)
    assert cache_key(index, 32, tmp_path) != with_error
    assert len(list((tmp_path / cache.KEYS).iterdir())) == 1


def test_a_remembered_key_reads_no_image_and_a_bad_memo_is_found_again(cifake_root, tmp_path, monkeypatch):
    index = real_train(cifake_root)
    key = cache_key(index, 32, tmp_path)
    (memo,) = (tmp_path / cache.KEYS).iterdir()
    reads = []
    real = cache._source_digest
    monkeypatch.setattr(cache, "_source_digest", lambda item: reads.append(item) or real(item))
    assert cache_key(index, 32, tmp_path) == key and reads == []
    for bad in ("{", '{"key": "../x", "images": 30}', json.dumps({"key": "0" * 32, "images": 29}), "[]"):
        memo.write_text(bad)
        assert cache_key(index, 32, tmp_path) == key
        assert json.loads(memo.read_text()) == {"key": key, "images": 30}
    assert len(reads) == 4 * 30


def test_resolution_changes_key_and_size(cifake_root, tmp_path, decode_calls):
    index = real_train(cifake_root)
    assert cache_key(index, 16) != cache_key(index, 32)
    load_images(index, 32, cache_dir=tmp_path, progress=False)
    data = load_images(index, 16, cache_dir=tmp_path, progress=False)
    assert data.images.shape == (30, 3, 16, 16)
    assert len(decode_calls) == 2


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_bad_image_raises_naming_file(cifake_root, tmp_path):
    index = real_train(cifake_root)
    truncate(index.paths[4])
    with pytest.raises(BadImageError, match=re.escape(str(index.paths[4]))):
        load_images(index, 32, cache_dir=tmp_path, progress=False, workers=1)


def test_skip_bad_skips_and_keeps_labels_aligned(cifake_root, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CHUNK", 4)  # bad files in the first and a later chunk
    index = real_train(cifake_root)
    bad = [1, 9, 22]
    truncate(index.paths[1])
    index.paths[9].write_bytes(b"not an image at all")
    truncate(index.paths[22])
    good = [i for i in range(len(index)) if i not in bad]
    for attempt in range(2):  # decoded, then read back from the cache
        data = load_images(index, 32, cache_dir=tmp_path, skip_bad=True, workers=1, progress=False)
        assert data.skipped == [str(index.paths[i]) for i in bad], attempt
        np.testing.assert_array_equal(data.labels.numpy(), index.labels[good])
        assert len(data.images) == len(good)
        for row in (0, 1, 8, len(good) - 1):
            np.testing.assert_array_equal(data.images[row].numpy(), pil_rgb(index.paths[good[row]]))


def test_parallel_decode_equals_serial(cifake_root, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CHUNK", 4)
    pools = []

    class SpyPool(decode.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(decode, "ProcessPoolExecutor", SpyPool)
    index = real_train(cifake_root)
    serial = load_images(index, 24, cache_dir=tmp_path / "serial", workers=1, progress=False)
    assert not pools
    parallel = load_images(index, 24, cache_dir=tmp_path / "parallel", workers=2, progress=False)
    assert pools == [(2,)]
    assert torch.equal(serial.images, parallel.images) and torch.equal(serial.labels, parallel.labels)


def _palette_image():
    im = Image.new("P", (16, 16))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putdata([(x // 6) for y in range(16) for x in range(16)])  # columns 0-5 red, 6-11 green, 12-15 blue
    return im


def test_grayscale_decodes_to_three_equal_channels(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    path = tmp_path / "gray.png"
    Image.fromarray(gray, mode="L").save(path)
    out = decode_image(path, 16)
    assert out.shape == (3, 16, 16) and out.dtype == np.uint8
    for channel in out:
        np.testing.assert_array_equal(channel, gray)


def test_rgba_decodes_to_rgb(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    out = decode_image(path, 16)
    assert out.shape == (3, 16, 16)
    np.testing.assert_array_equal(out, rgba[..., :3].transpose(2, 0, 1))


def test_palette_decodes_to_palette_colours(tmp_path):
    path = tmp_path / "pal.png"
    _palette_image().save(path)
    out = decode_image(path, 16)
    assert out.shape == (3, 16, 16)
    np.testing.assert_array_equal(out[:, 0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[:, 5, 8], [0, 255, 0])
    np.testing.assert_array_equal(out[:, 15, 15], [0, 0, 255])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_non_square_image_resized_and_centre_cropped(tmp_path, fmt):
    # 128 wide × 64 high: left quarter red, middle half green, right quarter blue → a 16×16 centre crop is green.
    array = np.zeros((64, 128, 3), np.uint8)
    array[:, :32] = (255, 0, 0)
    array[:, 32:96] = (0, 255, 0)
    array[:, 96:] = (0, 0, 255)
    path = tmp_path / f"wide.{fmt.lower()}"
    Image.fromarray(array).save(path, format=fmt, quality=95)
    out = decode_image(path, 16).astype(int)
    assert out.shape == (3, 16, 16)
    inner = out[:, 2:-2, 1:-1]
    assert inner[1].min() >= 230 and inner[0].max() <= 30 and inner[2].max() <= 30


# --- integrity: a damaged cache file is reported once and decoded again, never trusted -------------------------


def _zero_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))


def _truncate_cache(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path):
    path.write_bytes(b"")


def _garbage_with_matching_checksum(path):
    """Bytes that pass the checksum (it was written for them) but are not a safetensors file: the parse check."""
    garbage = b"\x07" * 1000
    path.write_bytes(garbage)
    record = {"file": path.name, "sha256": hashlib.sha256(garbage).hexdigest(), "bytes": len(garbage)}
    cache.checksum_path(path).write_text(json.dumps(record))


def _bad_checksum_json(path):
    cache.checksum_path(path).write_text("{not json")


def _no_checksum_file(path):
    """A file as older synthgap versions wrote it (or a write killed between data and checksum): not trusted."""
    cache.checksum_path(path).unlink()


DAMAGE = {
    "zeroed-middle": (_zero_middle, "checksum mismatch"),
    "truncated": (_truncate_cache, "size mismatch"),
    "empty": (_empty, "size mismatch"),
    "garbage": (_garbage_with_matching_checksum, "cannot be parsed"),
    "bad-checksum-json": (_bad_checksum_json, "checksum file cannot be read"),
    "legacy": (_no_checksum_file, "has no checksum file"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_cache_warns_once_and_is_rebuilt(cifake_root, tmp_path, decode_calls, caplog, damage):
    corrupt, reason = DAMAGE[damage]
    index = real_train(cifake_root)
    fresh = load_images(index, 32, cache_dir=tmp_path / "cache", progress=False, workers=1)
    fresh_images, fresh_labels = fresh.images.clone(), fresh.labels.clone()  # the file is mapped; damage it in place
    del fresh
    (path,) = (tmp_path / "cache").glob("*.safetensors")
    corrupt(path)

    with caplog.at_level("WARNING", logger="synthgap"):
        again = load_images(index, 32, cache_dir=tmp_path / "cache", progress=False, workers=1)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"synthgap: warning: cache file {path} ")
    assert reason in warnings[0] and warnings[0].endswith("; rebuilding")
    assert len(decode_calls) == 2  # decoded again, not loaded from the damaged file
    assert torch.equal(again.images, fresh_images) and torch.equal(again.labels, fresh_labels)

    caplog.clear()
    load_images(index, 32, cache_dir=tmp_path / "cache", progress=False, workers=1)  # the rebuilt file is trusted again
    assert len(decode_calls) == 2 and not caplog.records


def test_cache_file_is_committed_by_its_checksum_file(cifake_root, tmp_path):
    load_images(real_train(cifake_root), 32, cache_dir=tmp_path / "cache", progress=False)
    (path,) = (tmp_path / "cache").glob("*.safetensors")
    record = json.loads(cache.checksum_path(path).read_text())
    assert record["bytes"] == path.stat().st_size and len(record["sha256"]) == 64
    assert not list((tmp_path / "cache").glob(".*.tmp"))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_cache_files_get_the_umask_permissions(cifake_root, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        load_images(real_train(cifake_root), 32, cache_dir=tmp_path / "cache", progress=False)
    finally:
        os.umask(old)
    files = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
    assert len(files) == 3  # the data, its checksum, the remembered key
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {oct(mode)}


def _rss_bytes() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _mapped_rss(path) -> int:
    """Resident bytes of this process's mappings of the file `path` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) >= 6 and fields[-1] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


def _mapped_set(tmp_path, count=1500, size=96):
    """A cache file as an older synthgap wrote it (safetensors' own writer), opened as a cache is."""
    from synthgap.data.cache import checksum_path
    from synthgap.data.tensorfile import parse_cache
    from synthgap.io import atomic_write_json, save_safetensors

    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8)
    labels = torch.arange(count) % 3
    path = tmp_path / "set.safetensors"
    metadata = {"classes": json.dumps(["a", "b", "c"]), "skipped": "[]", "name": "set"}
    record = save_safetensors({"images": images, "labels": labels}, path, metadata=metadata)
    atomic_write_json(checksum_path(path), {"file": path.name, **record})
    return images, labels, path, parse_cache


def test_cached_images_are_memory_mapped_not_read(tmp_path):
    """A cached set costs no memory until its images are used, and a batch reads only its own images."""
    images, labels, path, parse = _mapped_set(tmp_path)  # 41 MB
    before = _rss_bytes()
    mapped = parse(path, ("a", "b", "c"))
    assert _rss_bytes() - before < 8 << 20  # opened, not read
    assert torch.equal(mapped.gather(torch.tensor([7, 1234])), images[[7, 1234]])
    assert torch.equal(mapped.labels, labels)
    assert mapped.select(np.arange(1500)).images is mapped.images  # the whole set in order: no copy


def test_subsets_and_batches_read_only_their_rows(tmp_path):
    """A per-class subset copies nothing, and reading every batch of it leaves resident memory flat: rows are read
    with pread into the batch, not touched through the mapping (whose pages would stay resident)."""
    images, labels, path, parse = _mapped_set(tmp_path, count=2000)  # 55 MB
    mapped = parse(path, ("a", "b", "c"))
    positions = np.sort(np.random.default_rng(0).choice(2000, 1200, replace=False))
    expected, expected_labels = images[positions], labels[positions]
    del images
    before = _rss_bytes()
    subset = mapped.select(positions)
    assert _rss_bytes() - before < 4 << 20
    order = torch.randperm(1200, generator=torch.Generator().manual_seed(0))
    for start in range(0, 1200, 100):
        take = order[start : start + 100]
        assert torch.equal(subset.gather(take), expected[take])
        assert torch.equal(subset.labels[take], expected_labels[take])
    assert _mapped_rss(path) < 1 << 20  # batches were read with pread: the mapping's pages were never touched
    assert _rss_bytes() - before < 24 << 20  # batches come and go (the allocator may keep a few); 33 MB never stay
    nested = subset.select(np.array([0, 5, 1199]))
    assert torch.equal(nested.images, expected[[0, 5, 1199]])
    assert torch.equal(subset.gather(slice(10, 20)), expected[10:20])


def test_cache_file_written_by_streaming_decoder_opens_with_safetensors(tmp_path):
    """The decoder writes the file chunk by chunk; it is still a valid safetensors file for any reader."""
    from safetensors.torch import load_file

    root = tmp_path / "imgs"
    for c in ("x", "y"):
        (root / c).mkdir(parents=True)
        for i in range(3 if c == "x" else 2):
            Image.new("RGB", (20, 14), (40 * i, 90, 200)).save(root / c / f"{i}.png")
    index = open_source(f"folder:{root}", "train", None)
    data = load_images(index, 12, cache_dir=tmp_path / "cache", progress=False, workers=1)
    loaded = load_file(str(next((tmp_path / "cache").glob("*.safetensors"))))
    assert torch.equal(loaded["images"], data.images) and torch.equal(loaded["labels"], data.labels)
    assert data.images.shape == (5, 3, 12, 12)


def test_many_skipped_files_rewrite_the_header(tmp_path):
    """A skipped-file list longer than the header space reserved moves the data once; the file stays valid."""
    from safetensors.torch import load_file

    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir(parents=True)
    Image.new("RGB", (16, 16), (1, 2, 3)).save(root / "a" / "good.png")
    Image.new("RGB", (16, 16), (3, 2, 1)).save(root / "b" / "good.png")
    for i in range(120):  # ~120 paths of ~80 characters: well over the 4 KiB of slack
        (root / "b" / f"broken-image-with-a-rather-long-file-name-{i:04d}.png").write_bytes(b"not an image")
    index = open_source(f"folder:{root}", "train", None)
    data = load_images(index, 16, cache_dir=tmp_path / "cache", progress=False, skip_bad=True, workers=1)
    assert len(data) == 2 and len(data.skipped) == 120
    loaded = load_file(str(next((tmp_path / "cache").glob("*.safetensors"))))
    assert torch.equal(loaded["images"], data.images)
    again = load_images(index, 16, cache_dir=tmp_path / "cache", progress=False, skip_bad=True, workers=1)
    assert again.skipped == data.skipped and torch.equal(again.images, data.images)


def _tiny_tree(root, bad=(), count=6, size=(20, 14)):
    """Images 0..count-1 over two classes; the positions in `bad` are undecodable."""
    for i in range(count):
        folder = root / ("x" if i % 2 == 0 else "y")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:03d}.png"
        if i in bad:
            path.write_bytes(b"not an image")
        else:
            Image.new("RGB", size, (40 * i % 256, 90, 200)).save(path)
    return open_source(f"folder:{root}", "train", None)


def test_a_chunk_of_only_bad_images_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CHUNK", 3)
    index = _tiny_tree(tmp_path / "imgs", bad={1, 3, 5}, count=9)  # sorted by class: x 0,2,4,6,8 then y 1,3,5,7
    data = load_images(index, 12, cache_dir=tmp_path / "cache", progress=False, skip_bad=True, workers=1)
    assert len(data) == 6 and len(data.skipped) == 3


def test_every_header_length_near_the_reserved_space_gives_a_valid_file(tmp_path, monkeypatch):
    """Whatever the slack, the header with its length prefix fits or is moved: the file always loads."""
    from safetensors.torch import load_file

    index = _tiny_tree(tmp_path / "imgs", bad={1})
    for slack in range(0, 120, 3):
        monkeypatch.setattr(cache, "HEADER_SLACK", slack)
        folder = tmp_path / f"cache-{slack}"
        data = load_images(index, 12, cache_dir=folder, progress=False, skip_bad=True, workers=1)
        loaded = load_file(str(next(folder.glob("*.safetensors"))))
        assert torch.equal(loaded["images"], data.images) and len(data.skipped) == 1


def test_long_runs_are_read_in_several_calls(tmp_path, monkeypatch):
    images, _, path, parse = _mapped_set(tmp_path, count=40)
    monkeypatch.setattr(rowfile, "READ_LIMIT", 10_000)  # rows are 27,648 bytes: every row takes several reads
    mapped = parse(path, ("a", "b", "c"))
    assert torch.equal(mapped.gather(torch.arange(40)), images)


def test_gather_takes_any_index_form(tmp_path):
    images, _, path, parse = _mapped_set(tmp_path, count=12)  # 27 KB rows: the pread path
    subset = parse(path, ("a", "b", "c")).select(np.arange(2, 12))
    expected = images[2:12]
    assert torch.equal(subset.gather(slice(None, None, -2)), expected.flip(0)[::2])
    assert torch.equal(subset.gather(torch.tensor([-1, 0])), expected[[9, 0]])
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[1, 4]] = True
    assert torch.equal(subset.gather(mask), expected[[1, 4]])
    assert subset.gather(torch.tensor([], dtype=torch.long)).shape == (0, 3, 96, 96)
    with pytest.raises(IndexError):
        subset.gather(torch.tensor([10]))


def test_in_memory_sets_may_be_landscape():
    from synthgap.data.tensors import ImageTensors

    data = ImageTensors(torch.zeros(2, 3, 32, 48, dtype=torch.uint8), torch.tensor([0, 1]), ("a", "b"))
    assert data.resolution == 32 and data.view_size is None


def test_mixed_sets_are_read_from_their_parts(tmp_path):
    from synthgap.data.tensors import concat_images

    images, labels, path, parse = _mapped_set(tmp_path, count=10)
    mapped = parse(path, ("a", "b", "c"))
    memory = cache.ImageTensors(images[:4].flip(0).clone(), labels[:4], ("a", "b", "c"), key="m")
    mapped.key = "f"
    mixed = concat_images([mapped.select(np.array([1, 3, 5])), memory])
    reference = torch.cat([images[[1, 3, 5]], images[:4].flip(0)])
    assert len(mixed) == 7 and mixed.nbytes == reference.numel()
    assert torch.equal(mixed.gather(torch.tensor([6, 0, 3, 2])), reference[[6, 0, 3, 2]])
    assert torch.equal(mixed.images, reference)
    assert torch.equal(mixed.select(np.array([0, 4])).images, reference[[0, 4]])
    assert mixed.key.startswith("mix-")


def test_a_decompression_bomb_sized_image_is_one_synthgap_warning(tmp_path, monkeypatch, caplog, recwarn):
    path = tmp_path / "huge.png"
    Image.new("RGB", (12, 12), (0, 255, 0)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 144 pixels: over the limit, under twice it (an error)
    with caplog.at_level(logging.WARNING, logger="synthgap"):
        out = decode_image(path, 8)
    assert out.shape == (3, 8, 8) and (out[1] == 255).all()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and messages[0].startswith(f"synthgap: warning: {path}: a very large image (12×12")
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_class_that_skip_bad_left_short_names_the_side_and_the_skipped_images(cifake_root, tmp_path):
    from synthgap.data.config import DataConfig, load_split
    from synthgap.errors import SynthgapError

    index = real_train(cifake_root)
    truncate(index.paths[0])  # one of class 0's three images
    config = DataConfig(data_root=cifake_root, skip_bad=True, cache_dir=tmp_path, workers=1)
    with pytest.raises(SynthgapError) as caught:
        load_split(config, "cifake:real", "train", 3, progress=False)
    assert str(caught.value) == (
        "cifake:real (train, after skipping 1 unreadable images): class 'airplane' has 2 images, fewer than the 3 "
        "asked for"
    )
