"""Successive halving's rule on hand-built validation curves (pure functions)."""

import pytest

from kdistill.compare import search
from kdistill.compare.search import Probe


def test_a_job_is_dropped_only_when_a_no_larger_job_is_ahead_by_more_than_the_margin():
    probes = [
        Probe("kd (w16)", size=7000, val_accuracy=0.950),
        Probe("labels (w16)", size=7000, val_accuracy=0.940),  # within the margin: kept
        Probe("kd_t8 (w16)", size=7000, val_accuracy=0.930),  # 2 points behind kd: dropped
        Probe("kd (w64)", size=100000, val_accuracy=0.980),
        Probe("labels (w64)", size=100000, val_accuracy=0.960),  # behind kd (w64): dropped
        Probe("kd+int8 (w64)", size=25000, val_accuracy=0.975),  # smaller: nothing ahead
        Probe("prune90 (w64)", size=100000, val_accuracy=0.974),  # behind kd+int8 by 0.001
    ]
    kept = [p.key for p in search.kept(probes, margin=0.015, share=1.0)]
    assert kept == ["kd (w16)", "labels (w16)", "kd (w64)", "kd+int8 (w64)", "prune90 (w64)"]
    # Halving: at most ceil(7 / 2) = 4 go on: the three on the front (trailing nothing
    # no larger), then prune90 (trails kd (w64) by 0.006) before labels (w16) (0.010).
    assert [search.gap(p, probes) for p in probes] == [
        -0.01,
        0.01,
        0.02,
        -0.005,
        0.02,
        -0.025,
        0.006,
    ]
    halved = [p.key for p in search.kept(probes, margin=0.015)]
    assert halved == ["kd (w16)", "kd (w64)", "kd+int8 (w64)", "prune90 (w64)"]
    assert search.reason(probes[1], probes, 0.015) == (
        "dropped: it trails a no-larger job by 0.0100, within the margin 0.0150, but 4 of 7 "
        "jobs trailing by less went on (halving)"
    )


def test_every_job_on_the_front_goes_on_even_beyond_half():
    # Each larger job is more accurate: all three are on the front.
    probes = [Probe("a", 1, 0.90), Probe("b", 2, 0.91), Probe("c", 3, 0.92)]
    assert [p.key for p in search.kept(probes, margin=0.0, share=0.1)] == ["a", "b", "c"]


def test_the_smallest_job_is_kept_however_inaccurate():
    # Nothing is smaller than it, so it can still be on the front (its own corner).
    probes = [Probe("tiny", 10, 0.50), Probe("big", 1000, 0.99)]
    assert [p.key for p in search.kept(probes, margin=0.005)] == ["tiny", "big"]


def test_a_larger_job_never_drops_a_smaller_one():
    probes = [Probe("small", 100, 0.90), Probe("large", 101, 0.99)]
    assert [p.key for p in search.kept(probes, margin=0.0)] == ["small", "large"]


def test_margin_is_two_standard_errors_of_the_best_or_half_a_point():
    probes = [Probe("a", 1, 0.96), Probe("b", 1, 0.90)]
    # 2 * sqrt(0.96 * 0.04 / 144) = 0.03266
    assert search.margin(probes, val_samples=144) == pytest.approx(0.032660, abs=1e-6)
    # 6,000 samples at 0.99: 2 * sqrt(0.0099 / 6000) = 0.00257 < 0.005
    assert search.margin([Probe("a", 1, 0.99)], val_samples=6000) == 0.005


def test_probe_is_a_quarter_of_the_epochs_and_short_runs_are_not_halved():
    assert [search.probe_epochs(e) for e in (15, 30, 8, 7, 1)] == [3, 7, 2, 0, 0]


def test_estimated_size_takes_the_smallest_export_of_the_job():
    assert search.estimated_size(1000, ["none", "float16", "int8"]) == 1000
    assert search.estimated_size(1000, ["none"]) == 4000
    assert search.estimated_size(1000, ["float16"]) == 2000


def test_reason_names_the_job_ahead_and_by_how_much():
    probes = [Probe("kd (w16)", 7000, 0.95), Probe("labels (w16)", 7000, 0.90)]
    assert search.reason(probes[1], probes, 0.01) == (
        "dropped: kd (w16) is no larger and ahead by 0.0500 (> margin 0.0100)"
    )
    assert search.reason(probes[0], probes, 0.01) == (
        "kept: on the probe's front; no job of at most its size is ahead by more than 0.0100"
    )
