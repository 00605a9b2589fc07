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
