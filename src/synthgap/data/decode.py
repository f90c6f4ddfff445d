"""Decoding: an image (file or bytes) as uint8 3×R×R, and a pool of processes that decodes items chunk by chunk."""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from synthgap.data.items import ImageItems, ImageSource
from synthgap.errors import BadImageError, warn

DECODER_VERSION = 1  # bump when decode_image changes its output
CHUNK = 512  # images per worker task: big enough to amortise process overhead, small enough for a smooth bar


def decode_image(source: ImageSource, resolution: int, name: str | None = None) -> np.ndarray:
    """One image (a path, or a buffer of encoded bytes named `name`) as uint8 3×R×R: converted to RGB, shorter side
    resized to R, centre-cropped."""
    name = str(source) if name is None else name
    # PIL's warnings are recorded rather than printed: a decompression-bomb-sized image (above Image.MAX_IMAGE_PIXELS,
    # below twice that, where PIL refuses it) becomes one synthgap warning naming the file; any other is passed on.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(source) as im:
                size = im.size
                im.draft("RGB", (resolution, resolution))  # JPEG: decode at reduced scale when much larger than R
                im = im.convert("RGB")
                if im.size != (resolution, resolution):
                    im = _resize_center_crop(im, resolution)
                array = np.asarray(im, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            reason = (str(exc) or type(exc).__name__).replace(repr(source), "its bytes")  # no "<BytesIO at 0x…>"
            raise BadImageError(name, reason) from None
    for caught_warning in caught:
        if issubclass(caught_warning.category, Image.DecompressionBombWarning):
            pixels = f"{size[0]}×{size[1]} = {size[0] * size[1]:,} pixels"
            warn(f"{name}: a very large image ({pixels}, over PIL's decompression-bomb limit); decoded anyway")
        else:
            warnings.warn_explicit(
                caught_warning.message, caught_warning.category, caught_warning.filename, caught_warning.lineno
            )
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _resize_center_crop(im: Image.Image, resolution: int) -> Image.Image:
    width, height = im.size
    scale = resolution / min(width, height)
    new_w, new_h = max(resolution, round(width * scale)), max(resolution, round(height * scale))
    im = im.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (new_w - resolution) // 2, (new_h - resolution) // 2
    return im.crop((left, top, left + resolution, top + resolution))


def decode_chunk(items: ImageItems, resolution: int, skip_bad: bool) -> tuple[np.ndarray, list[int]]:
    """Decode a chunk of items; returns the stacked images and the positions (within the chunk) that failed."""
    images, bad = [], []
    for i, (name, source) in enumerate(items.sources()):
        try:
            images.append(decode_image(source, resolution, name))
        except BadImageError:
            if not skip_bad:
                raise
            bad.append(i)
    stacked = np.stack(images) if images else np.zeros((0, 3, resolution, resolution), np.uint8)
    return stacked, bad


def decoded_chunks(
    chunks: list[ImageItems], resolution: int, skip_bad: bool, workers: int | None
) -> Iterator[tuple[np.ndarray, list[int]]]:
    """(images, positions that failed) of each chunk in order, decoded by a pool with a bounded number in flight."""
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield decode_chunk(chunk, resolution, skip_bad)
        return
    with ProcessPoolExecutor(workers) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(decode_chunk, chunk, resolution, skip_bad))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
