"""What decides a run's arithmetic besides its settings: the device type, the CPU threads and the autocast precision.

The same training gives different numbers with 1 and with 2 intra-op threads (reductions are split differently),
on a CPU and on a GPU, and in fp32 and bf16. So these are part of every run's and every cached model's identity,
every backend runs a run with the threads it was identified with, and each record says them (`compute`).
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from synthgap.train.loop import autocast_dtype, cpu_flags

PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Compute:
    """Where and how a run computes: device type ("cpu" | "cuda"), intra-op CPU threads (of each process), and the
    processes one run trains in (DistributedDataParallel: several split every batch, so the numbers differ)."""

    device: str = "cpu"
    threads: int = 1
    processes: int = 1

    def identity(self, precision: str) -> dict:
        """The fields that identify the arithmetic of a training with recipe precision `precision` ("auto" is
        resolved as it will be on this device and CPU). The processes are named only when there are several, so the
        identity of every one-process run stays what it was."""
        dtype = autocast_dtype(precision, torch.device(self.device))
        several = {"processes": self.processes} if self.processes > 1 else {}
        return {"device": self.device, "threads": self.threads, "precision": PRECISION_NAMES[dtype], **several}

    def record(self, precision: str, data_resident: bool | None = None) -> dict:
        """What a record says of its arithmetic: the identity, and the processor kind (told, not hashed, so a model
        cache shared by different nodes stays shared; a report that mixes kinds says so, report/sanity.py). On a GPU
        it can tell whether the images were kept in GPU memory (`FitResult.data_resident`): a speed matter, not an
        arithmetic one, so it is never hashed, and left out when None (every CPU run: records stay as they were)."""
        told = {} if data_resident is None else {"data_resident": data_resident}
        return {**self.identity(precision), "processor": processor_kind(self.device), **told}


@functools.cache
def processor_kind(device: str = "cpu") -> str:
    """The kind of processor whose arithmetic a run's numbers come from: the GPU's name on CUDA; on a CPU its
    widest matrix instructions (AMX, AVX-512-BF16, AVX-512, AVX2, or the machine name), since bf16 results differ
    between AMX and AVX-512-BF16 CPUs and fp32 kernels differ between AVX-512 and AVX2."""
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    for kind, flag in (("AMX", "amx_bf16"), ("AVX-512-BF16", "avx512_bf16"), ("AVX-512", "avx512f"), ("AVX2", "avx2")):
        if flag in cpu_flags():
            return kind
    return platform.machine() or "unknown"


def this_process(device: torch.device | str | None = None) -> Compute:
    """The compute of this process as it is now: its device type and its torch thread count."""
    kind = torch.device(device).type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return Compute(kind, torch.get_num_threads())


@contextmanager
def using_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to `threads` for the block, then restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
