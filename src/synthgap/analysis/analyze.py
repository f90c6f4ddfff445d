"""`synthgap analyze DIR`: per-layer diagnostics of an experiment's two baseline students → DIR/analysis.jsonl.

R is the baseline trained on the real side, S the one trained on the synthetic side (their `BaselineRecord`s in
DIR/results.jsonl; the networks come from the model cache, DIR/spec.yaml says how they were built and fed).
Every layer 1..L of the family's layer map gets:

1. `cka`: minibatch linear CKA (unbiased HSIC, `cka.py`) of R's and S's flattened layer outputs; with a second seed
   of a side, the same between that side's two seeds — the seed noise floor (rows with pair "R~R" / "S~S").
2. `probe_top1`: a linear probe on each student's pooled layer features, fitted on real *training* images
   (`probe_per_class` per class) and tested on the real test images (`probes.py`).
3. `fd`, `kid`, `precision`, `recall`: the distance between the synthetic and the real training images in each
   student's pooled layer-N features (`distances.py`), over all classes; `fd` and `kid` also per class.

Steps: 1. read the spec and the baselines; 2. load the networks; 3. one pass over the test images feeds CKA and
keeps R's and S's pooled test features; 4. per student, one pass over the real training images (probe and
domain-gap images together) and one over the synthetic ones give the probe and domain-gap rows; 5. all rows are
written at once, atomically.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synthgap.analysis.cka import CKA_DEFINITION, MIN_BATCH, MinibatchCKA, gram, hsic_unbiased
from synthgap.analysis.distances import (
    FD_MIN_IMAGES_PER_DIM,
    KID_BLOCK,
    KNN_K,
    PR_MAX_IMAGES,
    enough_for_fd,
    frechet_distance,
    kernel_distance,
    precision_recall,
)
from synthgap.analysis.features import LayerTaps, pool, pooled_features
from synthgap.analysis.probes import L2, MAX_ITER, probe_top1
from synthgap.analysis.rows import AnalysisRow, write_analysis
from synthgap.config import read_yaml, validate
from synthgap.data.cache import default_cache_dir
from synthgap.data.subsets import class_permutation
from synthgap.data.tensors import ImageTensors
from synthgap.errors import SynthgapError
from synthgap.experiments.results import RESULTS_FILE, BaselineRecord, read_results
from synthgap.experiments.spec import ExperimentSpec, Side
from synthgap.experiments.store import DataStore, ModelCache
from synthgap.models import ModelFamily, get_family
from synthgap.progress import progress_bar, track
from synthgap.train.loaders import eval_loader
from synthgap.train.loop import default_device
from synthgap.train.recipe import TrainRecipe

CKA_BATCH = 256  # test images per CKA minibatch (Nguyen et al. 2021 use 256 too)
SEED = 0  # image subsets and the order of the CKA minibatches
# Images per set by default: enough for FD at up to 1,250 feature dimensions (2 images per dimension), and the
# whole analysis of a CIFAKE ResNet-50 under 5 % of its layer sweep on a 2-core CPU (benchmarks/bench_analysis.py).
MAX_IMAGES = 2500
STUDENTS: dict[str, Side] = {"R": "real", "S": "synthetic"}

PROBE_DEFINITION = (
    "top-1 (%) on the real test images of multinomial logistic regression on the student's pooled layer output "
    "(standardised), fitted with L-BFGS on real training images"
)
FD_DEFINITION = (
    "Fréchet distance between Gaussian fits of the synthetic and the real training images' pooled layer-N features "
    "of the named student (not FID: not Inception features)"
)
KID_DEFINITION = (
    "unbiased MMD² with KID's cubic polynomial kernel between the synthetic and the real training images' pooled "
    "layer-N features of the named student, both divided by one scalar (their features' root mean square)"
)
PRECISION_DEFINITION = (
    "improved precision (Kynkäänniemi et al. 2019): share of synthetic training images inside the real training "
    "images' k-NN manifold, in the named student's pooled layer-N features"
)
RECALL_DEFINITION = (
    "improved recall (Kynkäänniemi et al. 2019): share of real training images inside the synthetic training "
    "images' k-NN manifold, in the named student's pooled layer-N features"
)


@dataclass(frozen=True)
class Network:
    """A loaded baseline student: its label ("R", "S"; "R2", "S2" for the noise floor's second seed) and record."""

    label: str
    record: BaselineRecord
    model: nn.Module

    @property
    def identity(self) -> dict:
        return {"runs": [self.record.run], "seeds": [self.record.seed], "model_keys": [self.record.model_key]}


def analyze(
    folder: Path,
    *,
    model_cache: Path | None = None,
    probe_per_class: int = 100,
    max_images: int | None = MAX_IMAGES,
    progress: bool = True,
) -> Path:
    """Write `folder`/analysis.jsonl (every layer, every measure) and return its path.

    `max_images` caps each image set (the real test images, each training side), class-stratified and seeded;
    None uses all the experiment's images. `probe_per_class` real training images per class train the probes.
    """
    folder = Path(folder)
    if probe_per_class < 1:
        raise SynthgapError(f"--probe-per-class must be at least 1, got {probe_per_class}")
    if max_images is not None and max_images < 1:
        raise SynthgapError(f"--max-images must be at least 1 (or none for all images), got {max_images}")
    # 1. the spec and the baselines
    spec = load_experiment_spec(folder)
    family = get_family(spec.model.name)
    chosen = choose_baselines(read_results(folder), spec)
    store = DataStore(spec, progress)
    classes = store.classes
    # 2. the networks
    device = default_device()
    cache = ModelCache(model_cache or default_cache_dir() / "models")
    networks = {label: load_network(cache, label, record, spec, classes, device) for label, record in chosen.items()}
    rows = Rows(family)
    # 3. the test pass
    test = capped(store.test(), max_images)
    pairs = [pair for pair in (("R", "S"), ("R", "R2"), ("S", "S2")) if pair[1] in networks]
    cka, test_features, test_labels = scan_test_images(networks, family, test, spec.recipe, device, pairs, progress)
    rows.add_cka(cka, pairs, networks)
    # 4. probes and domain gap, one student at a time (only its pooled features are held)
    train = TrainingSets.of(store, probe_per_class, max_images)
    for label in STUDENTS:
        network = networks[label]
        features = {
            name: pooled_features(
                network.model,
                family.layer_map,
                eval_loader(images, spec.recipe),
                device=device,
                desc=f"{label} {name}",
                progress=progress,
            )
            for name, images in train.images.items()
        }
        add_student_rows(rows, network, features, train, (test_features[label], test_labels), classes, device, progress)
    # 5. write
    return write_analysis(folder, rows.rows)


def add_student_rows(
    rows: Rows,
    network: Network,
    features: dict[str, dict[int, torch.Tensor]],
    train: TrainingSets,
    test: tuple[dict[int, torch.Tensor], torch.Tensor],
    classes: tuple[str, ...],
    device: torch.device,
    progress: bool,
) -> None:
    """One student's probe and domain-gap rows, layer by layer, from its pooled training features ("real",
    "synthetic") and its pooled test features with their labels. A progress step per layer: on a large model each
    layer's probe and distances take long enough that a silent loop looks stuck."""
    test_features, test_labels = test
    with progress_bar(
        len(features["real"]), desc=f"{network.label} probes and domain gap", unit="layer", enabled=progress
    ) as bar:
        for layer, real_x in features["real"].items():
            probe_x = real_x[train.probe_rows]
            result = probe_top1(
                probe_x, train.labels["probe"], test_features[layer], test_labels, len(classes), device=device
            )
            rows.add_probe(network, layer, result)
            gap = real_x[train.gap_rows], features["synthetic"][layer]
            rows.add_domain_gap(network, layer, gap, train.labels, classes, device)
            bar.update(1)


def load_experiment_spec(folder: Path) -> ExperimentSpec:
    if not (folder / RESULTS_FILE).exists():
        raise SynthgapError(f"no {RESULTS_FILE} in {folder}: run an experiment with --out {folder} first")
    path = folder / "spec.yaml"
    if not path.is_file():
        raise SynthgapError(f"no spec.yaml in {folder}: analyze needs the folder written by `synthgap run`")
    return validate(ExperimentSpec, read_yaml(path), where=str(path))


def choose_baselines(records: list, spec: ExperimentSpec) -> dict[str, BaselineRecord]:
    """{"R": ..., "S": ...} at one seed (the smallest both sides have, else each side's smallest), plus "R2" / "S2":
    the same side's next seed, for the noise floor, where a side has two seeds."""
    by_side: dict[str, list[BaselineRecord]] = {}
    for label, side in STUDENTS.items():
        on_side = [
            r
            for r in records
            if isinstance(r, BaselineRecord)
            and r.side == side
            and r.target == spec.data.ref(side)
            and (r.model or spec.model.name) == spec.model.name
        ]
        if not on_side:
            raise SynthgapError(
                f"no {side}-side baseline ({label}, trained on {spec.data.ref(side)}) in results.jsonl: analyze "
                "compares the R and S baselines, so the spec needs a baseline block with both sides"
            )
        by_side[label] = sorted(on_side, key=lambda r: r.seed)
    shared = sorted({r.seed for r in by_side["R"]} & {r.seed for r in by_side["S"]})
    chosen: dict[str, BaselineRecord] = {}
    for label, candidates in by_side.items():
        first = next((r for r in candidates if r.seed == shared[0]), candidates[0]) if shared else candidates[0]
        chosen[label] = first
        second = next((r for r in candidates if r.seed != first.seed), None)
        if second is not None:
            chosen[f"{label}2"] = second
    return chosen


def load_network(
    cache: ModelCache, label: str, record: BaselineRecord, spec: ExperimentSpec, classes: tuple[str, ...], device
) -> Network:
    if not record.model_key:
        raise SynthgapError(f"{record.run}: its record names no model cache entry (model_key); run it again")
    if not cache.has(record.model_key):
        raise SynthgapError(
            f"{record.run}: model {record.model_key} is not in the model cache {cache.folder}; pass --model-cache "
            "with the folder the experiment ran with"
        )
    config = spec.model.model_copy(update={"num_classes": len(classes), "image_size": spec.data.resolution})
    model, metadata = cache.load(record.model_key, config)
    trained_on = tuple(metadata.get("classes") or classes)
    if trained_on != tuple(classes):
        raise SynthgapError(f"{record.run}: the cached model's classes {list(trained_on)} differ from the data's")
    return Network(label, record, model.to(device).eval())


def subset_positions(images: ImageTensors, limit: int | None = None, *, per_class: int | None = None) -> np.ndarray:
    """Sorted positions of a seeded, class-stratified subset: `per_class` images of each class, or `limit` images in
    all (limit // C per class); a class with fewer keeps all of its images. Neither: every image. For one seed, a
    smaller subset is contained in a larger one (each class's images are taken in one seeded order)."""
    if per_class is None and (limit is None or limit >= len(images)):
        return np.arange(len(images))
    per_class = per_class if per_class is not None else max(1, limit // len(images.classes))
    labels = images.labels.numpy()
    chosen = [class_permutation(labels, c, name, SEED)[:per_class] for c, name in enumerate(images.classes)]
    return np.sort(np.concatenate(chosen))


def capped(images: ImageTensors, limit: int | None) -> ImageTensors:
    """At most `limit` images, class-stratified (`subset_positions`); None: all of them."""
    if limit is None or limit >= len(images):
        return images
    return images.select(subset_positions(images, limit))


@dataclass(frozen=True)
class TrainingSets:
    """The training images analyze reads: real ones (the probe images and the domain-gap images, one feature pass
    for both) and synthetic ones; rows of the real set's features that belong to each use; labels per use."""

    images: dict[str, ImageTensors]  # "real", "synthetic"
    probe_rows: np.ndarray
    gap_rows: np.ndarray
    labels: dict[str, torch.Tensor]  # "probe", "real" (domain-gap images), "synthetic"

    @classmethod
    def of(cls, store: DataStore, probe_per_class: int, max_images: int | None) -> TrainingSets:
        real, synthetic = store.train("real"), capped(store.train("synthetic"), max_images)
        probe, gap = subset_positions(real, per_class=probe_per_class), subset_positions(real, max_images)
        both = np.union1d(probe, gap)
        labels = {"probe": real.labels[probe], "real": real.labels[gap], "synthetic": synthetic.labels}
        images = {"real": real.select(both), "synthetic": synthetic}
        return cls(images, np.searchsorted(both, probe), np.searchsorted(both, gap), labels)


def scan_test_images(
    networks: dict[str, Network],
    family: ModelFamily,
    test: ImageTensors,
    recipe: TrainRecipe,
    device: torch.device,
    pairs: list[tuple[str, str]],
    progress: bool,
) -> tuple[dict[tuple[str, int], MinibatchCKA], dict[str, dict[int, torch.Tensor]], torch.Tensor]:
    """One pass over the test images in seeded order (so each CKA minibatch mixes the classes): CKA sums per
    (pair "A~B", layer), pooled features of R and S per layer, and the labels in that order."""
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(SEED))
    shuffled = test.select(order)
    loader = eval_loader(shuffled, recipe.model_copy(update={"eval_batch_size": CKA_BATCH}))
    cka: dict[tuple[str, int], MinibatchCKA] = {}
    pooled: dict[str, dict[int, list[torch.Tensor]]] = {label: {} for label in STUDENTS}
    with ExitStack() as stack:
        taps = {label: stack.enter_context(LayerTaps(n.model, family.layer_map)) for label, n in networks.items()}
        for images, _ in track(loader, desc="test pass (CKA)", unit="batch", enabled=progress, leave=False):
            images = images.to(device)
            grams: dict[str, dict[int, torch.Tensor]] = {}
            for label, tap in taps.items():
                outputs = tap(images, lambda a: (gram(a), pool(a).cpu()))
                grams[label] = {layer: g for layer, (g, _) in outputs.items()}
                if label in pooled:
                    for layer, (_, vectors) in outputs.items():
                        pooled[label].setdefault(layer, []).append(vectors)
            if len(images) >= MIN_BATCH:
                _add_batch(cka, grams, pairs)
    features = {label: {layer: torch.cat(chunks) for layer, chunks in parts.items()} for label, parts in pooled.items()}
    return cka, features, shuffled.labels


def _add_batch(
    cka: dict[tuple[str, int], MinibatchCKA], grams: dict[str, dict[int, torch.Tensor]], pairs: list[tuple[str, str]]
) -> None:
    """One minibatch's HSIC_1 terms; each network's own term is computed once and shared by its pairs."""
    own = {label: {layer: hsic_unbiased(g, g) for layer, g in by_layer.items()} for label, by_layer in grams.items()}
    for a, b in pairs:
        for layer, g in grams[a].items():
            n = g.shape[0]
            xy = hsic_unbiased(g, grams[b][layer])
            cka.setdefault((f"{a}~{b}", layer), MinibatchCKA()).add(xy, own[a][layer], own[b][layer], n)


def _side(label: str) -> str:
    return label.rstrip("2")


class Rows:
    """The rows of one analysis, with the fields every row shares."""

    def __init__(self, family: ModelFamily) -> None:
        self.family = family
        self.rows: list[AnalysisRow] = []

    def _add(self, measure: str, layer: int, value: float | None, **fields) -> None:
        if value is not None and not math.isfinite(value):
            value, fields["note"] = None, fields.get("note") or "not finite (a representation without variance)"
        self.rows.append(
            AnalysisRow(
                measure=measure,
                layer=layer,
                num_layers=self.family.num_layers,
                model=self.family.name,
                value=value,
                **fields,
            )
        )

    def add_cka(
        self, cka: dict[tuple[str, int], MinibatchCKA], pairs: list[tuple[str, str]], networks: dict[str, Network]
    ) -> None:
        for a, b in pairs:
            pair = f"{a}~{b}"
            first, second = networks[a].identity, networks[b].identity
            identity = {key: first[key] + second[key] for key in first}
            for layer in range(1, self.family.num_layers + 1):
                sums = cka.get((pair, layer), MinibatchCKA())
                self._add(
                    "cka",
                    layer,
                    sums.value,
                    pair=f"{_side(a)}~{_side(b)}",
                    **identity,
                    images={"test": sums.images},
                    settings={"minibatch": CKA_BATCH, "minibatches": sums.batches, "seed": SEED},
                    definition=CKA_DEFINITION,
                    details={"hsic_xy": sums.xy, "hsic_xx": sums.xx, "hsic_yy": sums.yy},
                )

    def add_probe(self, network: Network, layer: int, result) -> None:
        self._add(
            "probe_top1",
            layer,
            result.top1,
            student=network.label,
            **network.identity,
            images={"train": result.train_images, "test": result.test_images},
            settings={"l2": L2, "max_iter": MAX_ITER, "optimizer": "lbfgs", "init": "zeros", "standardised": True},
            definition=PROBE_DEFINITION,
            details={"train_top1": result.train_top1, "dims": result.dims, "standard_error": result.standard_error},
        )

    def add_domain_gap(
        self,
        network: Network,
        layer: int,
        features: tuple[torch.Tensor, torch.Tensor],
        labels: dict[str, torch.Tensor],
        classes: tuple[str, ...],
        device: torch.device,
    ) -> None:
        """FD, KID, precision and recall of the synthetic against the real training images at `layer`; FD and KID
        per class too. `features` holds the (real, synthetic) pooled features, labelled by `labels["real"]` /
        `labels["synthetic"]`."""
        real_labels, synthetic_labels = labels["real"].to(device), labels["synthetic"].to(device)
        a, b = features[0].to(device), features[1].to(device)
        self._gap_rows(network, layer, a, b, None)
        for c, name in enumerate(classes):
            self._gap_rows(network, layer, a[real_labels == c], b[synthetic_labels == c], name)

    def _gap_rows(self, network: Network, layer: int, real: torch.Tensor, synthetic: torch.Tensor, name) -> None:
        common = {
            "student": network.label,
            "class_name": name,
            **network.identity,
            "images": {"real": len(real), "synthetic": len(synthetic)},
        }
        dims = real.shape[1]
        fd_settings = {"min_images_per_dim": FD_MIN_IMAGES_PER_DIM, "dims": dims, "covariance": "unbiased"}
        if enough_for_fd(len(real), len(synthetic), dims):
            fd = frechet_distance(real, synthetic)
            details = {
                "mean_term": fd.mean_term,
                "covariance_term": fd.covariance_term,
                "relative": fd.relative,
                "real_variance": fd.reference_variance,
            }
            self._add("fd", layer, fd.value, **common, settings=fd_settings, definition=FD_DEFINITION, details=details)
        else:
            note = f"FD needs at least {FD_MIN_IMAGES_PER_DIM} images per feature dimension ({dims} dimensions)"
            self._add("fd", layer, None, **common, settings=fd_settings, definition=FD_DEFINITION, note=note)
        kid_settings = {
            "kernel": "(x·y/d + 1)^3",
            "block_images": KID_BLOCK,
            "blocks": "disjoint, as many as the smaller set fills",
            "seed": SEED,
            "scaling": "both sets divided by the root mean square of their feature values",
        }
        kid_fields = {**common, "settings": kid_settings, "definition": KID_DEFINITION}
        if min(len(real), len(synthetic)) >= 2:
            kid = kernel_distance(real, synthetic, seed=SEED)
            details = {"standard_error": kid.standard_error, "blocks": kid.blocks, "block_images": kid.block_images}
            self._add("kid", layer, kid.value, **kid_fields, details=details)
        else:
            self._add("kid", layer, None, **kid_fields, note="KID needs at least 2 images per set")
        if name is not None:
            return  # precision and recall over all classes only
        settings = {"k": KNN_K, "distance": "euclidean", "max_images": PR_MAX_IMAGES, "seed": SEED}
        if min(len(real), len(synthetic)) > KNN_K:
            pr = precision_recall(real, synthetic, seed=SEED)
            common["images"] = {"real": pr.images[0], "synthetic": pr.images[1]}
            self._add("precision", layer, pr.precision, **common, settings=settings, definition=PRECISION_DEFINITION)
            self._add("recall", layer, pr.recall, **common, settings=settings, definition=RECALL_DEFINITION)
        else:
            note = f"k-NN manifolds need more than k = {KNN_K} images per set"
            for measure, definition in (("precision", PRECISION_DEFINITION), ("recall", RECALL_DEFINITION)):
                self._add(measure, layer, None, **common, settings=settings, definition=definition, note=note)
