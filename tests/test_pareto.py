import numpy as np
import pytest

from kdistill.compare import pareto


def record(name, accuracy, size, latency=0.01, status="ok"):
    return {
        "strategy": name,
        "student": "w8",
        "accuracy": accuracy,
        "tflite_size_bytes": size,
        "latency_ms": latency,
        "status": status,
    }


def test_front_holds_exactly_the_undominated_records():
    rng = np.random.default_rng(0)
    records = [
        record(f"s{i}", float(a), int(s))
        for i, (a, s) in enumerate(zip(rng.uniform(0.8, 1.0, 40), rng.integers(1000, 50000, 40)))
    ]
    pareto.mark_pareto(records)
    front = [r for r in records if r["pareto"]]
    assert front
    for r in records:
        dominated = any(pareto.dominates(o, r) for o in records if o is not r)
        assert r["pareto"] == (not dominated)


def test_failed_records_are_never_on_the_front():
    records = [record("ok", 0.9, 2000), record("broken", 0.0, 0, status="failed")]
    pareto.mark_pareto(records)
    assert [r["pareto"] for r in records] == [True, False]


def test_recommendation_is_the_most_accurate_within_budget():
    records = [
        record("big", 0.99, 100 * 1024),
        record("mid", 0.97, 20 * 1024),
        record("small", 0.9, 5 * 1024),
    ]
    pick = pareto.recommend(records, pareto.Budget(max_size_kb=30))
    assert pick["within_budget"] and pick["record"]["strategy"] == "mid"
    assert pick["message"].startswith("Ship mid (w8)")
    assert pareto.recommend(records, pareto.Budget())["record"]["strategy"] == "big"


def test_budget_no_strategy_meets_names_the_closest():
    records = [record("big", 0.99, 100 * 1024), record("small", 0.9, 8 * 1024)]
    pick = pareto.recommend(records, pareto.Budget(max_size_kb=5, min_accuracy=0.95))
    assert pick["record"] is None and not pick["within_budget"]
    assert pick["closest"]["strategy"] == "small"
    assert (
        "No strategy meets the budget (size <= 5 KB, accuracy >= 0.95). Closest: small"
        in pick["message"]
    )


@pytest.mark.parametrize(
    "kwargs,argument",
    [({"max_size_kb": 0}, "max_size_kb"), ({"min_accuracy": 1.5}, "min_accuracy")],
)
def test_bad_budgets_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        pareto.Budget(**kwargs)


# -- verdicts with the answers written out by hand ------------------------------


def test_front_by_hand_with_ties_and_a_failed_record():
    records = [
        record("a", 0.90, 1000),
        record("b", 0.90, 2000),  # as accurate as a, larger: off
        record("c", 0.95, 3000),
        record("d", 0.95, 3000),  # c's exact twin: neither dominates, both on
        record("e", 0.85, 500),
        record("f", 0.80, 500),  # as small as e, less accurate: off
        record("g", 0.92, 4000),  # c is more accurate and smaller: off
        record("h", 1.00, 1, status="failed"),  # failed: off, and knocks no one off
    ]
    assert pareto.mark_pareto(records) is records
    assert [r["strategy"] for r in records if r["pareto"]] == ["a", "c", "d", "e"]


def test_dominance_needs_one_strict_improvement():
    a = record("a", 0.9, 1000)
    assert pareto.dominates(a, record("b", 0.9, 1001))
    assert pareto.dominates(a, record("b", 0.89, 1000))
    assert not pareto.dominates(a, record("b", 0.9, 1000))
    assert not pareto.dominates(a, record("b", 0.91, 2000))
    assert not pareto.dominates(a, record("b", 0.8, 999))


@pytest.mark.parametrize("order", [1, -1])
def test_equal_accuracy_within_budget_goes_to_the_smaller_file(order):
    records = [record("large", 0.95, 20 * 1024), record("small", 0.95, 10 * 1024)][::order]
    records.append(record("poor", 0.5, 1024))
    pick = pareto.recommend(records, pareto.Budget(max_size_kb=30))
    assert pick["record"]["strategy"] == "small"
    assert pick["message"] == (
        "Ship small (w8): the most accurate within budget (size <= 30 KB): "
        "accuracy 0.9500, 10.0 KB, 0.0100 ms per sample."
    )


def test_a_file_exactly_at_the_budget_fits():
    # 10 KiB = 10240 bytes meets max_size_kb=10; one byte more misses it.
    at_limit = record("at", 0.9, 10 * 1024)
    over = record("over", 0.99, 10 * 1024 + 1)
    pick = pareto.recommend([over, at_limit], pareto.Budget(max_size_kb=10))
    assert pick["within_budget"] and pick["record"]["strategy"] == "at"
    limits = pareto.Budget(max_latency_ms=2.0, min_accuracy=0.9)
    assert limits.violations(record("x", 0.9, 1, latency=2.0)) == {
        "latency": 0.0,
        "accuracy": 0.0,
    }


def test_violations_are_shares_of_each_limit():
    budget = pareto.Budget(max_size_kb=10, max_latency_ms=2.0, min_accuracy=0.8)
    # 15 KiB over 10: 0.5; 3 ms over 2: 0.5; (0.8 - 0.6) / 0.8 = 0.25.
    misses = budget.violations(record("x", 0.6, 15 * 1024, latency=3.0))
    assert misses == pytest.approx({"size": 0.5, "latency": 0.5, "accuracy": 0.25})
    assert budget.violations(record("y", 0.9, 5 * 1024, latency=1.0)) == {
        "size": 0.0,
        "latency": 0.0,
        "accuracy": 0.0,
    }
    assert pareto.Budget().violations(record("z", 0.1, 10**9, latency=100.0)) == {}


def test_budget_describes_each_limit():
    budget = pareto.Budget(max_size_kb=10, max_latency_ms=2.5, min_accuracy=0.8)
    assert budget.describe() == "size <= 10 KB, latency <= 2.5 ms, accuracy >= 0.8"
    assert pareto.Budget().describe() == "no budget"


@pytest.mark.parametrize("order", [1, -1])
def test_closest_miss_ties_go_to_the_more_accurate_record(order):
    # Both files are 12 KiB against a 10 KB limit: each misses by 20%.
    records = [record("worse", 0.90, 12 * 1024), record("better", 0.95, 12 * 1024)][::order]
    records.append(record("far", 0.99, 40 * 1024))
    pick = pareto.recommend(records, pareto.Budget(max_size_kb=10))
    assert pick["record"] is None and not pick["within_budget"]
    assert pick["closest"]["strategy"] == "better"
    assert pick["message"] == (
        "No strategy meets the budget (size <= 10 KB). Closest: better (w8) "
        "(accuracy 0.9500, 12.0 KB, 0.0100 ms), which misses size by 20%."
    )


def test_closest_names_only_the_limits_it_misses():
    records = [record("x", 0.6, 4 * 1024, latency=3.0)]
    pick = pareto.recommend(records, pareto.Budget(max_size_kb=10, max_latency_ms=2.0))
    assert pick["message"].endswith("which misses latency by 50%.")


def test_nothing_finished_means_nothing_to_recommend():
    pick = pareto.recommend([record("x", 0.9, 10, status="failed")], pareto.Budget())
    assert pick == {
        "record": None,
        "within_budget": False,
        "closest": None,
        "message": "No strategy finished, so there is nothing to recommend.",
    }
    within = pareto.recommend([record("x", 0.9, 10)], pareto.Budget())
    assert within["within_budget"] is True and within["closest"] is None


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"max_latency_ms": 0}, "argument `max_latency_ms`. Expected a positive number"),
        ({"max_size_kb": -1}, "argument `max_size_kb`. Expected a positive number"),
        ({"min_accuracy": -0.1}, r"argument `min_accuracy`. Expected a number in \[0, 1\]"),
    ],
)
def test_each_budget_limit_is_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pareto.Budget(**kwargs)
    assert pareto.Budget(min_accuracy=0.0).min_accuracy == 0.0


def test_a_zero_accuracy_floor_is_met_by_every_record():
    # Budget(min_accuracy=0) used to divide by zero when recommending.
    budget = pareto.Budget(min_accuracy=0.0)
    assert budget.violations(record("x", 0.0, 10)) == {"accuracy": 0.0}
    pick = pareto.recommend([record("x", 0.5, 10)], budget)
    assert pick["within_budget"] and pick["record"]["strategy"] == "x"


def test_messages_give_sizes_in_kib():
    # 102400 bytes are 100.0 KiB (not 99.9 thousand-ish units).
    big = record("big", 0.9, 100 * 1024, latency=3.0)
    within = pareto.recommend([big], pareto.Budget(max_size_kb=200))
    assert within["message"] == (
        "Ship big (w8): the most accurate within budget (size <= 200 KB): "
        "accuracy 0.9000, 100.0 KB, 3.0000 ms per sample."
    )
    missed = pareto.recommend([big], pareto.Budget(max_size_kb=50, max_latency_ms=2.0))
    assert missed["message"] == (
        "No strategy meets the budget (size <= 50 KB, latency <= 2 ms). Closest: big (w8) "
        "(accuracy 0.9000, 100.0 KB, 3.0000 ms), which misses size by 100%, latency by 50%."
    )
