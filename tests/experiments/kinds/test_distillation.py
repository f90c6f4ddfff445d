"""Distillation: the loss, the spec's checks, tiny end-to-end runs (cached and live teacher, a checkpoint teacher of
another family, a layer transfer from the distilled student) and a resume that gives the same student."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from synthgap.errors import SynthgapError
from synthgap.experiments.kinds.distillation import DistillationRecord, TeacherConfig
from synthgap.experiments.results import BaselineRecord
from synthgap.experiments.runner import run_experiment
from synthgap.experiments.single import TrainRunConfig, run_baseline
from synthgap.train.checkpoint import METADATA
from synthgap.train.distill import UNLABELLED, DistillationLoss
from tests.specs import TINY_MODEL, TINY_RECIPE, tiny_spec
from tests.train.test_resume import Preempted, preempt_in_epoch


def test_the_loss_is_the_tempered_kl_times_t_squared_plus_cross_entropy_on_labelled_images():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 5), torch.randn(6, 5)
    labels = torch.tensor([0, 1, 2, UNLABELLED, 4, UNLABELLED])
    targets = torch.cat([labels.float()[:, None], teacher], dim=1)  # cached teacher logits
    t = 4.0
    kl = (F.softmax(teacher / t, 1) * (F.log_softmax(teacher / t, 1) - F.log_softmax(student / t, 1))).sum(1).mean()
    soft_only = DistillationLoss(None, temperature=t, alpha=1.0)(student, targets, torch.empty(0))
    assert torch.allclose(soft_only, kl * t * t)
    mixed = DistillationLoss(None, temperature=t, alpha=0.9)(student, targets, torch.empty(0))
    hard = F.cross_entropy(student[labels != UNLABELLED], labels[labels != UNLABELLED])
    assert torch.allclose(mixed, 0.9 * kl * t * t + 0.1 * hard)
    same = DistillationLoss(None, temperature=t, alpha=1.0)(teacher, targets, torch.empty(0))
    assert same.abs().item() < 1e-5  # a student that agrees with its teacher has nothing to learn
    live = DistillationLoss(lambda images: teacher, temperature=t, alpha=1.0)  # teacher run on the batch
    assert torch.allclose(live(student, labels.float()[:, None], torch.empty(0)), kl * t * t)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"temperature": 0}, "temperature must be positive"),
        ({"temperature": float("inf")}, r"distillation\.temperature: must be a finite number, got inf"),
        (
            {"teacher": {"timm": "resnet10t", "weights": "w.safetensors", "std": [1, 1, float("nan")]}},
            r"teacher\.std\.2: must be a finite number, got nan",
        ),
        ({"alpha": [0.5, 1.5]}, r"alpha must be in \[0, 1\], got \[1.5\]"),
        ({"transfer_n": [18]}, "N must be in 1..17"),
        ({"teacher": {"checkpoint": "/no/such/folder"}}, "is not a synthgap checkpoint folder"),
        ({"teacher": {"timm": "resnet18", "weights": "w.pt"}}, "must be a .safetensors file"),
        ({"teacher": {"timm": "no_such_net", "weights": "w.safetensors"}}, "unknown timm model 'no_such_net'"),
    ],
)
def test_bad_settings_fail_when_the_spec_is_read(cifake_root, block, message):
    with pytest.raises(SynthgapError, match=message):
        tiny_spec(cifake_root, [{"kind": "distillation", **block}])


@pytest.mark.parametrize("source", ["checkpoint", "timm"])
def test_a_teacher_with_another_class_list_is_refused_by_dry_run_and_run(cifake_root, tmp_path, capsys, source):
    """The teacher's class list is in its checkpoint's metadata (or its timm settings): a teacher of other classes is
    refused before anything trains, by --dry-run and by the run alike, with the differing classes."""
    from synthgap.data.sources import CIFAR10_CLASSES
    from tests.test_bad_inputs import assert_run_and_dry_run_reject, write_spec

    classes = [*CIFAR10_CLASSES[:-1], "zebra"]
    folder = tmp_path / "teacher"
    folder.mkdir()
    if source == "checkpoint":  # never loaded: the class list is read from the metadata alone
        (folder / "model.safetensors").write_bytes(b"")
        (folder / METADATA).write_text(json.dumps({"classes": classes}))
        teacher, what = {"checkpoint": str(folder)}, f"teacher checkpoint {folder}"
    else:
        (folder / "w.safetensors").write_bytes(b"")
        teacher = {"timm": "resnet10t", "weights": str(folder / "w.safetensors"), "classes": classes}
        what = "timm teacher resnet10t"
    spec = write_spec(tmp_path, cifake_root, {"experiments": [{"kind": "distillation", "teacher": teacher}]})
    detail = "only in the first: ['zebra']; only in the second: ['truck']"
    assert_run_and_dry_run_reject(
        capsys, spec, tmp_path / "out", f"{what} and the experiment's data have different classes: {detail}"
    )


def test_unlabelled_real_needs_a_real_side(cifake_root):
    data = {"data_root": str(cifake_root), "real": "cifake:synthetic"}
    with pytest.raises(SynthgapError, match="unlabelled_real needs a real side"):
        tiny_spec(cifake_root, [{"kind": "distillation", "unlabelled_real": True}], data=data)


def test_data_free_distillation_records_no_real_information_and_a_transfer_from_the_student(cifake_root, tmp_path):
    block = {"kind": "distillation", "temperature": 4, "alpha": [0.9, 1.0], "transfer_n": [4]}
    spec = tiny_spec(cifake_root, [{"kind": "baseline", "sides": ["real"]}, block], recipe={"augmentation": "none"})
    records = {r.run: r for r in run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "m", progress=False)}
    real = records["baseline-real-s0"]
    assert isinstance(real, BaselineRecord)
    students = [r for r in records.values() if isinstance(r, DistillationRecord) and r.student == "distilled"]
    assert sorted(r.alpha for r in students) == [0.9, 1.0]
    for r in students:
        assert (r.real_labels_used, r.real_images_used) == (0, 0)
        assert r.teacher_fingerprint == real.fingerprint  # the teacher is named by the R run's fingerprint
        assert r.cached_teacher_logits and r.train_images == 20 and r.target == "cifake:synthetic"
    (transfer,) = [r for r in records.values() if isinstance(r, DistillationRecord) and r.student == "transfer"]
    assert (transfer.n_transferred, transfer.frozen, transfer.source_side) == (4, True, "synthetic")
    assert transfer.source == "distilled:distill-T4-a0.9-s0" and transfer.real_labels_used == 20


def test_with_augmentation_the_teacher_runs_on_each_batch_and_unlabelled_real_images_count(cifake_root, tmp_path):
    block = {"kind": "distillation", "unlabelled_real": True}
    spec = tiny_spec(cifake_root, [block], recipe={"augmentation": "standard"})
    records = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "m", progress=False)
    (student,) = [r for r in records if isinstance(r, DistillationRecord)]
    assert not student.cached_teacher_logits
    assert (student.real_labels_used, student.real_images_used, student.train_images) == (0, 20, 40)


def test_a_checkpoint_teacher_of_another_family_and_one_with_other_classes(cifake_root, tmp_path):
    teacher_dir = tmp_path / "teacher"
    config = TrainRunConfig.model_validate(
        {
            "data": {"data_root": str(cifake_root), "train": "cifake:real", "per_class": 2},
            "model": {**TINY_MODEL, "name": "resnet34"},
            "recipe": TINY_RECIPE,
        }
    )
    run_baseline(config, teacher_dir, teacher_dir, progress=False)
    checkpoint = teacher_dir / "checkpoint"
    block = {"kind": "distillation", "teacher": {"checkpoint": str(checkpoint)}}
    spec = tiny_spec(cifake_root, [block])
    (record,) = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "m", progress=False)
    assert record.teacher_fingerprint == TeacherConfig(checkpoint=checkpoint).digest()  # weights and metadata
    assert "resnet34" in record.teacher
    assert record.model == "resnet18"

    metadata = json.loads((checkpoint / METADATA).read_text())
    metadata["classes"] = [*metadata["classes"][:-1], "zebra"]
    (checkpoint / METADATA).write_text(json.dumps(metadata))
    with pytest.raises(SynthgapError, match=r"data have different classes: only in the first: \['zebra'\]"):
        run_experiment(spec, tmp_path / "out2", model_cache=tmp_path / "m", progress=False)
    assert not (tmp_path / "out2" / "results.jsonl").exists()  # nothing recorded


def test_a_timm_teacher_with_safetensors_weights_and_its_own_normalization(cifake_root, tmp_path):
    import timm
    from safetensors.torch import save_file

    teacher = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    weights = tmp_path / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, weights)
    block = {
        "kind": "distillation",
        "teacher": {"timm": "resnet10t", "weights": str(weights), "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    }
    spec = tiny_spec(cifake_root, [block], recipe={"augmentation": "none"})
    (record,) = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "m", progress=False)
    assert record.teacher.startswith("timm resnet10t") and record.teacher_fingerprint
    assert record.cached_teacher_logits and (record.real_labels_used, record.real_images_used) == (0, 0)
    wrong = {**block, "teacher": {**block["teacher"], "classes": ["a", "b"]}}
    with pytest.raises(SynthgapError, match="timm teacher resnet10t and the experiment's data have different classes"):
        run_experiment(tiny_spec(cifake_root, [wrong]), tmp_path / "out2", model_cache=tmp_path / "m", progress=False)


def test_a_killed_distillation_resumes_to_the_same_student(cifake_root, tmp_path, monkeypatch):
    from synthgap.train import loop

    monkeypatch.setattr(loop, "CHECKPOINT_MINUTES", 0)  # a state after every epoch, so the stop leaves one to resume
    spec = tiny_spec(cifake_root, [{"kind": "distillation", "alpha": 1.0}], recipe={"epochs": 3})
    reference = run_experiment(spec, tmp_path / "ref", model_cache=tmp_path / "ref-models", progress=False)
    with monkeypatch.context() as patch:
        calls = {"n": 0}
        real = loop.train_epoch

        def count(step, scheduler, loader, index, bar, **kwargs):
            calls["n"] += 1  # the teacher's own training runs first (3 epochs); stop the student in its 3rd
            if calls["n"] == 6:
                preempt_in_epoch(patch, 3)
                return loop.train_epoch(step, scheduler, loader, index, bar, **kwargs)
            return real(step, scheduler, loader, index, bar, **kwargs)

        patch.setattr(loop, "train_epoch", count)
        with pytest.raises(Preempted):
            run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "models", progress=False)
    assert list((tmp_path / "models").rglob("train_state.pt"))  # the stop left a state to resume from
    resumed = run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "models", progress=False)
    key = [r for r in resumed if isinstance(r, DistillationRecord)][0].model_key

    def checksum(folder):
        return json.loads((folder / key / METADATA).read_text())["weights_checksum"]["sha256"]

    assert checksum(tmp_path / "models") == checksum(tmp_path / "ref-models")  # bit-identical on the CPU
    assert {r.run: r.top1 for r in resumed} == {r.run: r.top1 for r in reference}
