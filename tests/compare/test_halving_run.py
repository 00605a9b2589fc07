"""`kdistill compare` with successive halving: what it trains, drops and records."""

import json
import os

import pytest

from kdistill import compare
from kdistill.compare import jobs

# The probe's validation accuracy of each training job, by its first strategy's name.
PROBE_ACCURACY = {"labels": 0.90, "kd": 0.95, "kd_t8_a0.1": 0.50}
RUN = dict(
    dataset="digits",
    student_widths=[8],
    epochs=8,
    teacher_epochs=3,
    max_train=300,
    latency_samples=2,
    verbose=False,
)


@pytest.fixture(scope="module")
def halved(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("halving") / "run")
    real_probe, real_train = jobs.probe, jobs._train
    trained, probed = [], []

    def probe(context, strategy, label, epochs):
        accuracy, params, summary = real_probe(context, strategy, label, epochs)
        probed.append((strategy.name, len(summary["val_history"])))
        return PROBE_ACCURACY[strategy.name], params, summary

    def train(context, strategy, label, seed, epochs=None, stop=True):
        if stop:  # the full training, not the probe
            trained.append(strategy.name)
        return real_train(context, strategy, label, seed, epochs, stop)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "probe", probe)
        patch.setattr(jobs, "_train", train)
        result = compare.run(
            strategy_names=["labels", "kd", "kd+int8", "kd_t8_a0.1"],
            output_dir=out,
            patience=1,
            search_mode="halving",
            **RUN,
        )
    return result, trained, probed


def test_only_the_jobs_that_can_reach_the_front_train_in_full(halved):
    result, trained, probed = halved
    # One 2-epoch probe per training job (kd and kd+int8 share one).
    assert probed == [("labels", 2), ("kd", 2), ("kd_t8_a0.1", 2)]
    # kd is no larger (its int8 export) and ahead of labels and kd_t8 by more than the
    # margin, 2 * sqrt(0.95 * 0.05 / 144) = 0.0363: only kd goes on.
    assert trained == ["kd"]
    status = {r["strategy"]: r["status"] for r in result.records}
    assert status == {"labels": "dropped", "kd_t8_a0.1": "dropped", "kd": "ok", "kd+int8": "ok"}
    assert result.recommendation["record"]["strategy"] in ("kd", "kd+int8")


def test_results_json_shows_each_strategys_probe_choice_and_stopping_epoch(halved):
    result = halved[0]
    with open(os.path.join(result.output_dir, "results.json")) as f:
        stored = {r["strategy"]: r for r in json.load(f)}
    labels = stored["labels"]["search"]
    assert labels["kept"] is False and labels["probe_val_accuracy"] == 0.9
    assert labels["margin"] == pytest.approx(0.03632, abs=1e-5)
    assert (
        labels["reason"] == "dropped: kd... (w8) is no larger and ahead by 0.0500 (> margin 0.0363)"
    )
    assert len(labels["probe_val_history"]) == 2
    kd = stored["kd+int8"]
    assert kd["search"]["kept"] is True and kd["search"]["probe_epochs"] == 2
    training = kd["training"]
    assert len(training["val_history"]) == training["epochs_run"] <= 8
    if training["stopped_early"]:  # patience 1: it stopped one epoch after its best
        assert training["epochs_run"] == training["best_epoch"] + 1
        assert training["val_accuracy"] == max(training["val_history"])
    else:
        assert training["epochs_run"] == 8


def test_report_shows_the_search_and_why_the_recommendation_won(halved):
    result = halved[0]
    with open(os.path.join(result.output_dir, "report.md")) as f:
        text = f.read()
    assert "| labels | w8 | dropped after a 2-epoch probe (validation accuracy 0.9000) |" in text
    assert "## The search" in text and "2 strategies were dropped after the probe" in text
    assert "100x question:" in text


def test_small_data_trains_every_strategy_for_all_epochs_by_default(tmp_path, monkeypatch):
    def no_probe(*args):
        raise AssertionError("a run on a small dataset must not probe")

    monkeypatch.setattr(jobs, "probe", no_probe)
    result = compare.run(
        strategy_names=["labels", "kd"],
        output_dir=str(tmp_path / "run"),
        **RUN,  # digits: 300 training samples, so "auto" searches exhaustively
    )
    assert [r["training"]["epochs_run"] for r in result.records] == [8, 8]
    assert not any(r["training"]["stopped_early"] for r in result.records)


def test_an_unknown_search_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"argument `search_mode`. Expected one of auto, halv"):
        compare.run(search_mode="greedy", output_dir=str(tmp_path / "run"), **RUN)
