"""Rows of an image tensor on disk, read with `pread` so that only a batch is resident."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# Rows at least this large are read with pread. Smaller ones (CIFAKE's 3 KB) are gathered through the mapping: a
# syscall per row would cost several times the copy (56k vs 150k+ img/s measured at 32 px), and a cache of such rows
# is small, so the pages a process touches stay few.
PREAD_MIN_ROW = 16 << 10
READ_LIMIT = 1 << 30  # bytes asked of one pread: Linux returns at most 0x7ffff000 per call


@dataclass(frozen=True)
class RowFile:
    """Where the rows of a cache file's image tensor lie, so batches can be read with `pread`.

    Pages touched through a memory mapping count towards the process's resident memory until the kernel needs
    them back, so a training loop that indexes a 20 GB mapping grows to many GB; rows read with `pread` go through
    the page cache (shared by every process on the node) and only the batch itself is resident.
    """

    path: Path
    offset: int  # byte offset of row 0
    row_shape: tuple[int, ...]  # 3×H×W

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape))

    def read(self, rows: torch.Tensor, *, pin: bool = False) -> torch.Tensor:
        """The rows at `rows` (in that order) as a new uint8 tensor (in pinned memory with `pin`, ready for a
        non-blocking copy to a GPU); consecutive rows are read in one call."""
        rows_list = rows.tolist()
        out = torch.empty((len(rows_list), *self.row_shape), dtype=torch.uint8, pin_memory=pin)
        flat = out.view(len(rows_list), self.row_bytes).numpy()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            start = 0
            while start < len(rows_list):
                stop = start + 1
                while stop < len(rows_list) and rows_list[stop] == rows_list[stop - 1] + 1:
                    stop += 1
                self._read_into(
                    fd, memoryview(flat[start:stop]).cast("B"), self.offset + rows_list[start] * self.row_bytes
                )
                start = stop
        finally:
            os.close(fd)
        return out

    def _read_into(self, fd: int, buffer: memoryview, position: int) -> None:
        """Fill `buffer` from `position`; one call returns at most ~2 GiB on Linux, so long runs take several."""
        done = 0
        while done < len(buffer):
            got = os.preadv(fd, [buffer[done : done + READ_LIMIT]], position + done)
            if got <= 0:
                raise OSError(errno.EIO, f"short read ({done} of {len(buffer)} bytes)", str(self.path))
            done += got
