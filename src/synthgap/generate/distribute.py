"""Where a generation runs: in this process (one `--shard i/n`), or as N shards on Ray tasks (`synthgap generate
text2img|unclip|img2img ... --backend ray --shards N`); `generate` is the switch between them.

Each task runs shard i/N exactly as a `--shard i/N` process would (same images, same files: see plan.py), with the
GPUs and CPUs it asks for; Ray retries a task whose worker was lost, and a rerun resumes as any generation does.
Once every task has returned, the driver merges: it runs shard 0/N once more, which finds every image written, loads
no pipeline and writes `manifest.jsonl` (and the previews) as the last of N shard processes would. The output folder
must be on storage every worker mounts at the same path.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from synthgap.errors import SynthgapError
from synthgap.generate.common import GenerationResult


class ShardedConfig(Protocol):
    """A generation config (`Text2ImgConfig`, `UnclipConfig`): a dataclass with a `shard` field "i/n"."""

    shard: str


Generate = Callable[[Any, bool], GenerationResult]


@dataclasses.dataclass(frozen=True)
class ShardFailure:
    """A shard that stopped with an error the user must see (bad input, disk full), carried back as text."""

    shard: str
    message: str


def run_shard(generate: Generate, config: ShardedConfig) -> GenerationResult | ShardFailure:
    """One shard in a Ray worker; expected errors come back as values so the driver can print one line."""
    try:
        return generate(config, False)
    except (SynthgapError, OSError) as exc:
        return ShardFailure(config.shard, str(exc))


def with_absolute_paths(config: ShardedConfig) -> ShardedConfig:
    """`config` with its paths (the output folder, a class-list or backgrounds file, a data root, the folder of a
    real source) made absolute."""
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, field.name)
        if isinstance(value, Path):
            changes[field.name] = value.resolve()
        elif field.name == "classes" and isinstance(value, str) and Path(value).is_file():
            changes[field.name] = str(Path(value).resolve())
        elif field.name == "source" and isinstance(value, str) and ":" in value:  # folder:DIR, hf:DIR?split=x
            from synthgap.data.sources import DataRef

            ref = DataRef.parse(value)
            if Path(ref.argument).exists():  # a hub id (hf:user/name) stays as it is
                changes[field.name] = str(dataclasses.replace(ref, argument=str(Path(ref.argument).resolve())))
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def generate_on_ray(
    generate: Generate,
    config: ShardedConfig,
    shards: int,
    *,
    address: str | None = None,
    gpus: float | None = None,
    cpus: int = 1,
) -> tuple[list[GenerationResult], GenerationResult]:
    """Run `shards` shards of `config` as Ray tasks, then merge; returns (each shard's result, the merge's).

    `gpus` per shard defaults to 1 where this machine (or the cluster) has GPUs, else 0. Without `address`, Ray is
    started on this machine with room for every shard at once (as far as its GPUs allow)."""
    import ray
    import torch

    if shards < 1:
        raise SynthgapError(f"--shards must be at least 1, got {shards}")
    if cpus < 1 or (gpus is not None and gpus < 0):
        raise SynthgapError(f"each shard needs at least one CPU and no negative GPUs, got {cpus} CPUs, {gpus} GPUs")
    if not ray.is_initialized():
        local: dict[str, Any] = {}
        if not address:
            local = {"num_cpus": max(os.cpu_count() or 1, cpus), "num_gpus": torch.cuda.device_count()}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
    cluster = ray.cluster_resources()
    if gpus is None:
        gpus = 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
    if gpus > cluster.get("GPU", 0) or cpus > cluster.get("CPU", 0):
        raise SynthgapError(f"the Ray cluster ({cluster}) has no room for a shard asking for {cpus} CPUs, {gpus} GPUs")
    config = with_absolute_paths(config)  # workers of a cluster do not start in this directory
    task = ray.remote(run_shard).options(num_cpus=cpus, num_gpus=gpus, max_retries=3)
    pending = [task.remote(generate, dataclasses.replace(config, shard=f"{i}/{shards}")) for i in range(shards)]
    outcomes = ray.get(pending)
    failures = [o for o in outcomes if isinstance(o, ShardFailure)]
    if failures:
        first = failures[0]
        more = f" ({len(failures) - 1} more shards failed)" if len(failures) > 1 else ""
        raise SynthgapError(f"shard {first.shard}: {first.message}{more}")
    merged = generate(dataclasses.replace(config, shard=f"0/{shards}"), False)
    if merged.manifest is None:  # an image vanished after its shard wrote it (e.g. removed by hand)
        raise SynthgapError(f"the {shards} shards returned, but images are missing in {merged.out}; run it again")
    return outcomes, merged


GENERATION_BACKENDS = ("local", "ray")


def generate(
    run: Generate,
    config: ShardedConfig,
    *,
    backend: str = "local",
    shards: int | None = None,
    address: str | None = None,
    gpus: float | None = None,
    cpus: int = 1,
    progress: bool = True,
) -> tuple[list[GenerationResult], GenerationResult | None]:
    """One generation in this process (`config.shard` says which shard), or all `shards` of it as Ray tasks followed
    by the merge; returns (each run's result, the merge's: None in this process)."""
    if backend == "local":
        if shards is not None or address is not None:
            raise SynthgapError("--shards and --address need --backend ray (locally, run each --shard i/n)")
        return [run(config, progress=progress)], None
    if backend not in GENERATION_BACKENDS:
        raise SynthgapError(f"unknown backend {backend!r} for generate; choose from: {', '.join(GENERATION_BACKENDS)}")
    if config.shard != "0/1":
        raise SynthgapError("--shard is for one process; with --backend ray give --shards N")
    return generate_on_ray(run, config, 1 if shards is None else shards, address=address, gpus=gpus, cpus=cpus)
