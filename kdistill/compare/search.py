"""Successive halving for `kdistill compare`: train all briefly, continue the promising.

Every training job (a student and a training stage, shared by the strategies
that differ only in how the trained student is exported) first trains for a
quarter of the epochs (the probe). A job continues to full training only if
it can still reach the accuracy/size Pareto front: no other job is at most as
large and more accurate on the validation data by more than a margin. The
margin covers what the validation data cannot tell apart (twice the standard
error of the best probe's accuracy) and what the rest of the training may
still change (at least half a point), so a job is dropped only when another,
no larger, is clearly ahead. Of the jobs left, at most half go on (successive
halving's rate): those that trail a no-larger job by the least, and every job
on the probe's front (trailing none) whatever their number.

The functions here are pure: they take measured numbers and return decisions,
so the rule is tested on hand-built validation curves.

Example:
    >>> probes = [Probe("kd/w16", 4000, 0.95), Probe("labels/w16", 4000, 0.93),
    ...           Probe("kd/w64", 20000, 0.97)]
    >>> [p.key for p in kept(probes, margin=0.01)]
    ['kd/w16', 'kd/w64']
"""

from __future__ import annotations

import dataclasses
import math

BYTES_PER_PARAM = {"none": 4, "float16": 2, "dynamic": 1, "int8": 1}
"""Bytes a weight takes in a `.tflite` file, by quantization: what `estimated_size`
ranks jobs by before any file exists."""

MIN_MARGIN = 0.005
"""The smallest margin: half a point of validation accuracy."""

MIN_PROBE_EPOCHS = 2
"""Halving needs a probe of at least this many epochs (a quarter of the run)."""


@dataclasses.dataclass(frozen=True)
class Probe:
    """What the probe measured for one training job.

    Attributes:
        key: The job's name, e.g. "kd_t4_a0.1 (w16)".
        size: Its smallest export's estimated size in bytes (see `estimated_size`).
        val_accuracy: Validation accuracy after the probe's epochs.
    """

    key: str
    size: float
    val_accuracy: float


def probe_epochs(epochs: int) -> int:
    """Epochs of the probe: a quarter of `epochs`, or 0 when too short to halve.

    Example:
        >>> probe_epochs(15), probe_epochs(30), probe_epochs(6)
        (3, 7, 0)
    """
    probe = epochs // 4
    return probe if probe >= MIN_PROBE_EPOCHS else 0


def estimated_size(params: int, quantizations) -> float:
    """The smallest of a job's `.tflite` files, estimated from its parameters.

    Args:
        params: The student's parameter count.
        quantizations: The TFLite modes its strategies export ("none",
            "float16", "dynamic", "int8").

    Returns:
        Bytes: parameters times the fewest bytes per weight among the modes.

    Example:
        >>> estimated_size(1000, ["none", "int8"])
        1000
    """
    return params * min(BYTES_PER_PARAM[q] for q in quantizations)


def margin(probes, val_samples: int, minimum: float = MIN_MARGIN) -> float:
    """How far ahead another job must be to drop one: max(minimum, 2 standard errors).

    Args:
        probes: The `Probe`s.
        val_samples: Size of the validation split.
        minimum: The smallest margin.

    Returns:
        A margin in accuracy (0.005 is half a point).

    Example:
        >>> round(margin([Probe("a", 1, 0.9)], val_samples=100), 3)
        0.06
    """
    best = max(p.val_accuracy for p in probes)
    error = math.sqrt(max(best * (1.0 - best), 0.0) / max(val_samples, 1))
    return max(minimum, 2.0 * error)


def gap(probe: Probe, probes) -> float:
    """How far `probe` trails the most accurate job of at most its size (<= 0: on the front).

    Example:
        >>> gap(Probe("b", 20, 0.8), [Probe("a", 10, 0.9), Probe("b", 20, 0.8)])
        0.1
    """
    ahead = [o.val_accuracy for o in probes if o is not probe and o.size <= probe.size]
    return round(max(ahead, default=-1.0) - probe.val_accuracy, 10)


def kept(probes, margin: float, share: float = 0.5) -> list:
    """The probes that go on to full training, in the given order.

    A probe is dropped when another is no larger and more accurate by more
    than `margin`. Of the rest, those on the front (`gap` <= 0) always go
    on, and the others by smallest `gap` until `share` of all the probes
    (rounded up) go on.

    Args:
        probes: `Probe`s of every job.
        margin: See `margin`.
        share: The most that go on, as a share of the probes (1 keeps every
            probe within the margin).

    Returns:
        The kept `Probe`s.

    Example:
        >>> [p.key for p in kept([Probe("a", 10, 0.9), Probe("b", 20, 0.8)], 0.05)]
        ['a']
    """
    within = [p for p in probes if gap(p, probes) <= margin]
    room = max(math.ceil(share * len(probes)), sum(gap(p, probes) <= 0 for p in within))
    chosen = sorted(within, key=lambda p: (gap(p, probes), -p.val_accuracy))[:room]
    return [p for p in probes if p in chosen]


def reason(probe: Probe, probes, margin: float, share: float = 0.5) -> str:
    """Why `probe` was kept or dropped, in words (for results.json and report.md)."""
    trails = gap(probe, probes)
    if trails <= margin and probe not in kept(probes, margin, share):
        return (
            f"dropped: it trails a no-larger job by {trails:.4f}, within the margin "
            f"{margin:.4f}, but {math.ceil(share * len(probes))} of {len(probes)} jobs "
            "trailing by less went on (halving)"
        )
    ahead = [
        other
        for other in probes
        if other is not probe
        and other.size <= probe.size
        and other.val_accuracy > probe.val_accuracy + margin
    ]
    if not ahead:
        where = "on the probe's front" if trails <= 0 else f"trails a no-larger job by {trails:.4f}"
        return f"kept: {where}; no job of at most its size is ahead by more than {margin:.4f}"
    best = max(ahead, key=lambda p: p.val_accuracy)
    return (
        f"dropped: {best.key} is no larger and ahead by "
        f"{best.val_accuracy - probe.val_accuracy:.4f} (> margin {margin:.4f})"
    )
