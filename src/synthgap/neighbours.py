"""k-nearest-neighbour radii of feature sets, shared by the per-layer diagnostics (precision and recall) and the
per-image real-k-NN score of curation."""

from __future__ import annotations

import torch

DISTANCE_CHUNK = 2048  # rows of a pairwise-distance block (memory: chunk × n floats)


def kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest *other* point of the same set."""
    radii = []
    for start in range(0, len(x), DISTANCE_CHUNK):
        distances = torch.cdist(x[start : start + DISTANCE_CHUNK], x)
        # k + 1 smallest: the smallest is the point itself (0). topk is ~5× faster than kthvalue on the CPU.
        radii.append(distances.topk(k + 1, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)
