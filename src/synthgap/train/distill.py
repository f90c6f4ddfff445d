"""Knowledge distillation: a student trained on a teacher's softened predictions (Hinton et al. 2015).

The loss is alpha · KL(softmax(teacher/T) ‖ softmax(student/T)) · T² + (1 − alpha) · cross-entropy on the images that
have a label. T² keeps the soft term's gradients on the scale of the hard term's as T grows. DM-KD (arXiv
2305.12954) distils from diffusion images with T = 10 and no hard labels (alpha = 1); RepDistiller's default is
T = 4, alpha = 0.9.

Targets travel through the loader as one float tensor per batch: column 0 the class label (−1 for an image whose
label the student must not see, e.g. a real image used through the teacher only), then, when the teacher's logits
were computed once beforehand (no augmentation), those logits. Without them the teacher runs on each augmented batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthgap.data.loader import TensorLoader
from synthgap.data.tensors import ImageTensors
from synthgap.data.transforms import Normalization
from synthgap.train.loop import autocast, autocast_dtype

UNLABELLED = -1  # label column value of an image seen through the teacher only


class Renormalize(nn.Module):
    """Images normalized for the student, re-normalized for a teacher that was trained with other statistics."""

    def __init__(self, student: Normalization, teacher: Normalization) -> None:
        super().__init__()
        s_mean, s_std = torch.tensor(student.mean), torch.tensor(student.std)
        t_mean, t_std = torch.tensor(teacher.mean), torch.tensor(teacher.std)
        # x_t = (x_s · s_std + s_mean − t_mean) / t_std, as one multiply-add per channel
        self.register_buffer("scale", (s_std / t_std)[None, :, None, None])
        self.register_buffer("shift", ((s_mean - t_mean) / t_std)[None, :, None, None])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.scale + self.shift


def teacher_view(teacher: nn.Module, student: Normalization, own: Normalization) -> nn.Module:
    """The teacher taking the student's normalized images (its own normalization applied in front when it differs),
    in eval mode and without gradients."""
    if tuple(student.mean) != tuple(own.mean) or tuple(student.std) != tuple(own.std):
        teacher = nn.Sequential(Renormalize(student, own), teacher)
    teacher.eval().requires_grad_(False)
    return teacher


class DistillationLoss:
    """alpha · T² · KL(teacher ‖ student) at temperature T + (1 − alpha) · cross-entropy on the labelled images."""

    def __init__(self, teacher: nn.Module | None, *, temperature: float, alpha: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        labels = targets[:, 0].long()
        if targets.shape[1] > 1:  # logits computed once beforehand
            soft = targets[:, 1:]
        else:
            if self.teacher is None:
                raise ValueError("no teacher and no cached teacher logits in the targets")
            with torch.no_grad():
                soft = self.teacher(images)
        t = self.temperature
        kd = F.kl_div(
            F.log_softmax(logits.float() / t, dim=1),
            F.log_softmax(soft.float() / t, dim=1),
            reduction="batchmean",
            log_target=True,
        ) * (t * t)
        if self.alpha == 1:
            return kd
        labelled = labels != UNLABELLED
        hard = F.cross_entropy(logits[labelled].float(), labels[labelled]) if bool(labelled.any()) else kd * 0
        return self.alpha * kd + (1 - self.alpha) * hard


@torch.no_grad()
def teacher_logits(
    teacher: nn.Module,
    images: ImageTensors,
    normalization: Normalization,
    *,
    batch_size: int,
    precision: str,
    device: torch.device,
) -> torch.Tensor:
    """The teacher's logits (float32, on the CPU) for every image of `images` in order, as the student sees them
    without augmentation (the centre view)."""
    loader = TensorLoader(images, batch_size=batch_size, normalization=normalization).on(device)
    dtype = autocast_dtype(precision, device)
    teacher.to(device).eval()
    out = []
    for batch, _ in loader.epoch(0):
        with autocast(device, dtype):
            out.append(teacher(batch.to(device)).float().cpu())
    return torch.cat(out)


def distillation_targets(labels: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
    """The loader's per-image targets: the label column, then the cached teacher logits when there are any."""
    column = labels.float()[:, None]
    return column if logits is None else torch.cat([column, logits], dim=1)
