"""Readings of analysis rows shared by the command line and the report: per-layer curves, where S diverges from R,
rank correlation.

Where a diagnostic "finds" a layer (each with the rule it uses):
- probes: the S-probe is behind the R-probe at a layer when R's top-1 exceeds S's by more than `PROBE_Z` standard
  errors of the difference (binomial errors of the two test accuracies, taken as independent, which is
  conservative: both probes are tested on the same images);
- CKA: CKA(R, S) is below the seed noise floor at a layer when it is lower than every seed pair's CKA there (R~R,
  S~S); without a second seed there is no floor and CKA finds no layer.
A diagnostic diverges "from layer ℓ on" when it holds at ℓ and at every later layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from synthgap.analysis.rows import AnalysisRow

PROBE_Z = 2.0


def overall(
    rows: Iterable[AnalysisRow], measure: str, *, student: str | None = None, pair: str | None = None, key: str = ""
) -> dict[int, float]:
    """{layer: value} of the all-classes rows of one measure (and student / pair); `key` reads `details[key]`."""
    curve = {}
    for row in rows:
        if row.measure != measure or row.class_name is not None or row.value is None:
            continue
        if (student is not None and row.student != student) or (pair is not None and row.pair != pair):
            continue
        value = row.details.get(key) if key else row.value
        if value is not None:
            curve[row.layer] = value
    return dict(sorted(curve.items()))


def first_from(flags: dict[int, bool]) -> tuple[int | None, bool]:
    """(first layer where the flag holds, whether it holds at every later layer too); (None, False) if never."""
    on = [layer for layer, flag in sorted(flags.items()) if flag]
    if not on:
        return None, False
    return on[0], all(flag for layer, flag in flags.items() if layer >= on[0])


def where(flags: dict[int, bool]) -> str:
    """'from layer ℓ on', 'first at layer ℓ (not at every later layer)', or '' when the flag never holds."""
    first, sustained = first_from(flags)
    if first is None:
        return ""
    return f"from layer {first} on" if sustained else f"first at layer {first} (not at every later layer)"


def probe_behind(rows: list[AnalysisRow]) -> dict[int, bool]:
    """{layer: whether the S-probe is behind the R-probe by more than PROBE_Z standard errors}."""
    probes = {s: {r.layer: r for r in rows if r.measure == "probe_top1" and r.student == s} for s in ("R", "S")}
    flags = {}
    for layer in sorted(set(probes["R"]) & set(probes["S"])):
        r, s = probes["R"][layer], probes["S"][layer]
        if r.value is None or s.value is None:
            continue
        error = math.hypot(r.details.get("standard_error", 0.0), s.details.get("standard_error", 0.0))
        flags[layer] = r.value - s.value > PROBE_Z * error
    return flags


def noise_floor(rows: list[AnalysisRow]) -> dict[int, float]:
    """{layer: the lowest seed-pair CKA (R~R, S~S)}; empty without a second seed."""
    floors = [overall(rows, "cka", pair=pair) for pair in ("R~R", "S~S")]
    layers = set().union(*floors)
    return {layer: min(f[layer] for f in floors if layer in f) for layer in sorted(layers)}


def cka_below_floor(rows: list[AnalysisRow]) -> dict[int, bool] | None:
    """{layer: whether CKA(R, S) is below the seed noise floor}; None without a noise floor."""
    floor = noise_floor(rows)
    if not floor:
        return None
    cka = overall(rows, "cka", pair="R~S")
    return {layer: cka[layer] < floor[layer] for layer in cka if layer in floor}


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (ties get their mean rank); None for fewer than 3 points or a constant input."""
    if len(xs) != len(ys) or len(xs) < 3:
        return None
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return cov / math.sqrt(vx * vy)


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _span(curve: dict[int, float], fmt: str) -> str:
    first, last = min(curve), max(curve)
    low = min(curve, key=curve.get)
    text = f"{format(curve[first], fmt)} at layer {first} → {format(curve[last], fmt)} at layer {last}"
    return text + (f" (lowest {format(curve[low], fmt)} at layer {low})" if low not in (first, last) else "")


def summary_lines(rows: list[AnalysisRow]) -> list[str]:
    """A few lines for the command line: what was compared and where S departs from R."""
    if not rows:
        return ["no analysis rows"]
    first = rows[0]
    runs = {r.student: r.runs[0] for r in rows if r.measure == "probe_top1"}
    lines = [f"{first.model} ({first.num_layers} layers): R = {runs.get('R')}, S = {runs.get('S')}"]
    cka = overall(rows, "cka", pair="R~S")
    if cka:
        floor = noise_floor(rows)
        floor_text = f"seed noise floor {_span(floor, '.2f')}" if floor else "no seed noise floor (one seed per side)"
        lines.append(f"CKA(R, S): {_span(cka, '.2f')}; {floor_text}")
        below = cka_below_floor(rows)
        if below is not None:
            text = where(below)
            lines.append(f"CKA(R, S) is below the noise floor {text}." if text else "CKA(R, S) stays at the floor.")
    probes = {s: overall(rows, "probe_top1", student=s) for s in ("R", "S")}
    if probes["R"] and probes["S"]:
        behind = where(probe_behind(rows))
        lines.append(
            f"Linear probes, top-1 % on real test images: R {_span(probes['R'], '.1f')}; S {_span(probes['S'], '.1f')}"
        )
        never = "The S-probe never falls behind the R-probe."
        lines.append(f"The S-probe falls behind the R-probe {behind}." if behind else never)
    for student in ("R", "S"):
        fd = overall(rows, "fd", student=student, key="relative")
        if fd:
            what = f"FD / tr Σ_real, synthetic vs real training images, on {student}'s features"
            lines.append(f"{what}: {_span(fd, '.3f')}")
    return lines
