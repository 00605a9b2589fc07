"""Schedules: plain functions of a count (an epoch or a step index).

Each constructor returns a `Schedule`, a callable ``schedule(count) -> float``
that `kdistill.callbacks.TemperatureScheduler` and `AlphaScheduler` apply per
epoch or per step. Any Python function of an integer works the same way.

Example:
    >>> s = linear(start=8.0, end=2.0, steps=6)
    >>> [s(i) for i in (0, 3, 6, 10)]
    [8.0, 5.0, 2.0, 2.0]
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence

from kdistill import validation


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A named schedule; call it with a count to get the value."""

    fn: object
    description: str

    def __call__(self, count: int) -> float:
        return float(self.fn(int(count)))

    def __repr__(self) -> str:
        return self.description


def constant(value: float) -> Schedule:
    """The same `value` at every count."""
    value = validation.check_number(value, "value")
    return Schedule(lambda count: value, f"constant({value})")


def linear(start: float, end: float, steps: int) -> Schedule:
    """Moves linearly from `start` (count 0) to `end` (count `steps`), then holds."""
    start = validation.check_number(start, "start")
    end = validation.check_number(end, "end")
    steps = _check_steps(steps, "steps")

    def fn(count):
        fraction = min(max(count, 0), steps) / steps
        return start + (end - start) * fraction

    return Schedule(fn, f"linear({start}, {end}, steps={steps})")


def cosine(start: float, end: float, steps: int) -> Schedule:
    """Cosine interpolation from `start` to `end` over `steps`, then holds."""
    start = validation.check_number(start, "start")
    end = validation.check_number(end, "end")
    steps = _check_steps(steps, "steps")

    def fn(count):
        fraction = min(max(count, 0), steps) / steps
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))

    return Schedule(fn, f"cosine({start}, {end}, steps={steps})")


def piecewise(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """Step schedule: `values[i]` until `boundaries[i]`, the last value after.

    Args:
        boundaries: Increasing counts where the value changes.
        values: One more value than boundaries.

    Example:
        >>> piecewise([2, 4], [1.0, 0.5, 0.1])(3)
        0.5
    """
    boundaries = [int(b) for b in boundaries]
    values = [validation.check_number(v, "values") for v in values]
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            "Invalid value for argument `values`: expected one more value than "
            f"boundaries ({len(boundaries) + 1}), received {len(values)}."
        )
    if boundaries != sorted(set(boundaries)):
        raise ValueError(
            "Invalid value for argument `boundaries`: expected strictly "
            f"increasing counts. Received: boundaries={boundaries}"
        )
    return Schedule(
        lambda count: values[bisect.bisect_right(boundaries, count)],
        f"piecewise({boundaries}, {values})",
    )


def linear_warmup(start: float, end: float, warmup_steps: int) -> Schedule:
    """Warms up linearly from `start` to `end` over `warmup_steps`, then holds."""
    schedule = linear(start, end, warmup_steps)
    return Schedule(schedule.fn, f"linear_warmup({start}, {end}, warmup_steps={warmup_steps})")


def _check_steps(steps, argument):
    return validation.check_integer(steps, argument, minimum=1)
