import json
import os

import numpy as np
import pytest

from kdistill import backend, compare, tflite
from kdistill.compare import jobs, pareto, report, strategies

STRATEGIES = ["labels", "kd_t4_a0.1", "kd+int8", "kd+prune50+dynamic", "kd+qat8"]


def small_run(output_dir=None, **kwargs):
    settings = dict(
        dataset="digits",
        student_widths=[8],
        strategy_names=STRATEGIES,
        epochs=3,
        teacher_epochs=3,
        max_train=300,
        latency_samples=5,
        verbose=False,
        output_dir=output_dir,
    )
    settings.update(kwargs)
    return compare.run(**settings)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("compare") / "run")
    return small_run(out, budget=pareto.Budget(max_size_kb=6.0))


@pytest.mark.slow
def test_compare_writes_every_output_file(finished):
    out = finished.output_dir
    for name in ("results.json", "results.csv", "report.md", "pareto.png", "teacher.keras"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    records = json.load(open(os.path.join(out, "results.json")))
    assert [r["strategy"] for r in records] == STRATEGIES
    required = {
        "strategy",
        "params",
        "tflite_size_bytes",
        "gzip_size_bytes",
        "accuracy",
        "teacher_agreement",
        "latency_ms",
        "compression_ratio",
        "pareto",
        "status",
    }
    for r in records:
        if r["status"] == "ok":
            assert required <= set(r)
    report_text = open(os.path.join(out, "report.md")).read()
    assert "## Recommendation" in report_text and "tensorflow" in report_text
    front = {
        f"{r['strategy'].replace('+', '-')}_{r['student']}.tflite" for r in records if r["pareto"]
    }
    assert set(os.listdir(os.path.join(out, "models"))) == front


@pytest.mark.slow
def test_a_failing_strategy_is_reported_and_the_rest_continue(finished):
    by_name = {r["strategy"]: r for r in finished.records}
    qat = by_name["kd+qat8"]
    if backend.LEGACY_KERAS:
        assert qat["status"] == "ok"
    else:
        assert qat["status"] == "failed" and "TF_USE_LEGACY_KERAS=1" in qat["error"]
    assert all(by_name[n]["status"] == "ok" for n in STRATEGIES[:4])


@pytest.mark.slow
def test_front_is_undominated_and_accuracy_is_measured_on_the_tflite_file(finished):
    ok = [r for r in finished.records if r["status"] == "ok"]
    for r in ok:
        assert r["pareto"] == (not any(pareto.dominates(o, r) for o in ok if o is not r))
    from kdistill import data

    split = data.load("digits", seed=0, max_train=300)
    for r in (r for r in ok if r["pareto"]):
        path = os.path.join(
            finished.output_dir,
            "models",
            f"{r['strategy'].replace('+', '-')}_{r['student']}.tflite",
        )
        assert tflite.evaluate_tflite(path, split.x_test, split.y_test, latency_samples=0)[
            "accuracy"
        ] == pytest.approx(r["accuracy"])
    int8 = next(r for r in ok if r["strategy"] == "kd+int8")
    assert (
        int8["tflite_size_bytes"]
        < next(r for r in ok if r["strategy"] == "kd_t4_a0.1")["tflite_size_bytes"]
    )


def run_on_tf_keras(tmp_path, strategy_name):
    """Runs one QAT strategy at width 32 for 6 epochs (at the module's width 8 a
    student pruned to 80% stays at chance). Returns its record under tf_keras;
    under Keras 3 checks that it failed with the way to run it, and returns None."""
    result = small_run(
        str(tmp_path / "run"), strategy_names=[strategy_name], student_widths=[32], epochs=6
    )
    (record,) = result.records
    if not backend.LEGACY_KERAS:
        assert record["status"] == "failed" and "TF_USE_LEGACY_KERAS=1" in record["error"]
        return None
    assert record["status"] == "ok", record.get("error")
    assert record["accuracy"] > 0.5  # ten digit classes: chance is 0.1
    return result


@pytest.mark.slow
def test_pruning_then_qat_keeps_the_zeros_in_the_int8_file(tmp_path):
    result = run_on_tf_keras(tmp_path, "kd+prune80+qat8")
    if result is not None:
        path = os.path.join(result.output_dir, "models", "kd-prune80-qat8_w32.tflite")
        assert tflite.weight_sparsity(path)["overall"] == pytest.approx(0.8, abs=0.02)


def test_hint_strategy_finds_its_layer_in_pruned_and_quantization_aware_students(tmp_path):
    # The hint reads the student's last hidden layer, which pruning and QAT wrap and rename.
    run_on_tf_keras(tmp_path, "hint+prune50+qat8")


@pytest.mark.slow
def test_recommendation_respects_the_budget(finished):
    pick = finished.recommendation
    fitting = [
        r for r in finished.records if r["status"] == "ok" and r["tflite_size_bytes"] <= 6 * 1024
    ]
    if fitting:
        assert pick["within_budget"]
        assert pick["record"]["accuracy"] == max(r["accuracy"] for r in fitting)
        assert pick["record"]["tflite_size_bytes"] <= 6 * 1024
    else:
        assert pick["record"] is None and "No strategy meets the budget" in pick["message"]


@pytest.mark.slow
def test_resume_keeps_finished_strategies_and_runs_only_new_ones(finished, monkeypatch):
    trained = []
    original = jobs._train
    monkeypatch.setattr(
        jobs, "_train", lambda *a, **k: trained.append(a[1].name) or original(*a, **k)
    )
    before = {
        r["strategy"]: r for r in report.load_results(finished.output_dir) if r["status"] == "ok"
    }
    result = small_run(resume=finished.output_dir, strategy_names=STRATEGIES + ["labels+float16"])
    # Failed strategies are not finished: a resumed run tries them again.
    assert sorted(trained) == sorted(
        ["labels+float16"] + ([] if backend.LEGACY_KERAS else ["kd+qat8"])
    )
    after = {r["strategy"]: r for r in result.records}
    for name, record in before.items():
        assert after[name]["elapsed_s"] == record["elapsed_s"]


def picked(result):
    record = result.recommendation["record"]
    return record and (record["strategy"], record["student"])


@pytest.mark.slow
def test_two_workers_give_the_same_results_as_a_sequential_run(finished, tmp_path):
    parallel_run = small_run(
        str(tmp_path / "run"), budget=pareto.Budget(max_size_kb=6.0), workers=2
    )
    measured = ["strategy", "student", "status", "params", "tflite_size_bytes", "gzip_size_bytes"]
    measured += ["accuracy", "accuracies", "teacher_agreement", "compression_ratio", "pareto"]
    for sequential, parallel in zip(finished.records, parallel_run.records, strict=True):
        assert [parallel.get(k) for k in measured] == [sequential.get(k) for k in measured]
    assert picked(parallel_run) == picked(finished)
    assert not os.path.exists(os.path.join(parallel_run.output_dir, ".teacher_outputs.npz"))


def test_strategies_that_share_a_trained_student_run_in_one_job():
    from kdistill.compare.jobs import group_units

    units = [(w, strategies.parse(n)) for w in ("w8", "w16") for n in ("kd", "labels", "kd+int8")]
    assert group_units(units) == [[0, 2], [1], [3, 5], [4]]


def test_unknown_strategy_fails_before_any_training(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown strategy 'kd\+prune'"):
        small_run(str(tmp_path / "run"), strategy_names=["labels", "kd+prune"])
    assert not (tmp_path / "run").exists()


def test_unwritable_output_directory_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match="Cannot create the output directory"):
        small_run(str(blocker / "run"), strategy_names=["labels"])


def sign_model(hidden=None):
    """Logits [x, -x]: class 0 for x >= 0 (a tie at 0 goes to class 0), else 1.

    With `hidden`, x first passes through a Dense layer of that width whose
    first unit copies it: the same function in a larger file.
    """
    from kdistill.backend import keras

    x_in = keras.Input((1,))
    h = x_in
    if hidden:
        copy = keras.layers.Dense(hidden)
        h = copy(h)
        copy.set_weights([np.eye(1, hidden, dtype="float32"), np.zeros(hidden, "float32")])
    out = keras.layers.Dense(2)
    model = keras.Model(x_in, out(h))
    kernel = np.zeros((h.shape[-1], 2), "float32")
    kernel[0] = [1.0, -1.0]
    out.set_weights([kernel, np.zeros(2, "float32")])
    return model


def test_a_record_off_the_front_carries_the_accuracy_of_its_tflite_file(tmp_path):
    # Calibration on [-1, 1] gives an input step of 2/255 = 0.0078; x = -0.002 and
    # 0.002 lie within half a step of 0 and both quantize to 0, where the logits tie
    # and the file answers class 0. So the Keras models score 4/4 and the int8 files
    # 3/4 (-0.002, class 1, is missed). The larger file, equally accurate, is off
    # the front, and its record must still hold 0.75, not the Keras model's 1.0.
    from kdistill import data

    x_train = np.array([[-1.0], [1.0]], "float32")
    x_test = np.array([[-0.002], [0.002], [1.0], [-1.0]], "float32")
    y_test = np.array([1, 0, 0, 1])
    split = data.Split(x_train, np.array([1, 0]), x_train, np.array([1, 0]), x_test, y_test)
    logits = np.concatenate([x_test, -x_test], axis=1)
    context = jobs.Context(
        split=split,
        teacher=None,
        teacher_train=None,
        teacher_test=logits,
        teacher_record={"tflite_size_bytes": 10**6},
        architectures={},
        epochs=1,
        seed=0,
        repeats=1,
        latency_samples=2,
        models_dir=str(tmp_path),
    )
    strategy = strategies.parse("labels+int8")
    records = []
    for label, hidden in (("small", None), ("large", 64)):
        model = sign_model(hidden)
        assert np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test) == 1.0
        trained = {(label, strategy.training_key, 0): model}  # nothing to train
        record = jobs.run_unit(context, strategy, label, trained)
        assert record["status"] == "ok", record.get("error")
        records.append(record)
    small, large = pareto.mark_pareto(records)
    assert large["tflite_size_bytes"] > small["tflite_size_bytes"]
    assert (small["pareto"], large["pareto"]) == (True, False)
    assert small["accuracy"] == large["accuracy"] == 0.75
    path = str(tmp_path / "labels-int8_large.tflite")
    assert tflite.evaluate_tflite(path, x_test, y_test, latency_samples=0)["accuracy"] == 0.75


def fake_run(directory):
    """A run directory as an earlier run leaves it: records, settings and a model."""
    records = [
        {"strategy": "kd", "student": "w8", "status": "ok", "accuracy": 0.9},
        {"strategy": "labels", "student": "w8", "status": "ok", "accuracy": 0.8},
    ]
    os.makedirs(directory / "models")
    (directory / "results.json").write_text(json.dumps(records))
    (directory / "models" / "kd_w8.tflite").write_bytes(b"model")
    return records


def test_a_directory_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path):
    records = fake_run(tmp_path / "run")
    with pytest.raises(
        ValueError,
        match=r"'.*run' holds an earlier run \(results.json\)\. Pass --resume .*run to "
        r"continue it, or --overwrite to replace it",
    ):
        small_run(str(tmp_path / "run"), strategy_names=["labels"])
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == records
    assert (tmp_path / "run" / "models" / "kd_w8.tflite").read_bytes() == b"model"


def test_resume_into_another_output_dir_is_refused(tmp_path):
    fake_run(tmp_path / "a")
    with pytest.raises(
        ValueError, match=r"--resume .* and --output_dir .* name different directories"
    ):
        small_run(str(tmp_path / "b"), resume=str(tmp_path / "a"))
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match=r"--resume and --overwrite exclude each other"):
        small_run(resume=str(tmp_path / "a"), overwrite=True)


def test_results_that_are_not_a_list_of_records_name_the_file(tmp_path):
    (tmp_path / "results.json").write_text('{"records": []}')
    with pytest.raises(
        ValueError,
        match=r"results.json' is not a list of kdistill compare records .*it holds a dict",
    ):
        report.load_results(str(tmp_path))
    (tmp_path / "results.json").write_text('[{"strategy": "kd"}]')
    with pytest.raises(ValueError, match=r'a list with the entry \{"strategy": "kd"\}'):
        small_run(resume=str(tmp_path), strategy_names=["labels"])


def fit_that_diverges_for(name):
    """training.fit_student, but the strategy `name` fails as a non-finite loss does."""
    original = jobs.training.fit_student

    def fit_student(teacher, model, split, settings, strategy, **kwargs):
        if strategy.name == name:
            raise FloatingPointError("The loss became NaN at epoch 1, batch 3.")
        return original(teacher, model, split, settings, strategy, **kwargs)

    return fit_student


def test_failed_strategy_resume_with_other_settings_and_overwrite(tmp_path, monkeypatch):
    tiny = dict(strategy_names=["labels", "kd"], epochs=1, teacher_epochs=1, max_train=100)
    out = str(tmp_path / "run")
    monkeypatch.setattr(jobs.training, "fit_student", fit_that_diverges_for("kd"))
    result = small_run(out, **tiny)
    kd, labels = sorted(result.records, key=lambda r: r["strategy"])
    assert kd["status"] == "failed" and kd["pareto"] is False
    assert kd["error"] == "FloatingPointError: The loss became NaN at epoch 1, batch 3."
    assert labels["status"] == "ok" and labels["pareto"] is True
    assert result.recommendation["record"]["strategy"] == "labels"
    assert "failed: FloatingPointError" in open(os.path.join(out, "report.md")).read()
    stored = json.load(open(os.path.join(out, "settings.json")))
    assert stored["strategies"] == ["labels", "kd"]
    assert stored["defining"]["epochs"] == 1 and stored["defining"]["teacher"].startswith(
        "built-in, 1 epochs"
    )

    # Resuming with other settings names each difference and changes nothing.
    before = open(os.path.join(out, "results.json")).read()
    with pytest.raises(ValueError) as error:
        small_run(resume=out, **{**tiny, "epochs": 15, "seed": 1})
    message = str(error.value)
    assert f"Cannot resume '{out}' with other settings" in message
    assert "epochs: 1 in the run, 15 now" in message and "seed: 0 in the run, 1 now" in message
    assert "data: 'digits, sha256:" in message  # another seed splits the data otherwise
    assert open(os.path.join(out, "results.json")).read() == before

    # --overwrite replaces the run: its records, models and teacher.
    monkeypatch.undo()
    result = small_run(out, overwrite=True, **{**tiny, "strategy_names": ["labels"]})
    assert [r["strategy"] for r in result.records] == ["labels"]
    assert [r["strategy"] for r in report.load_results(out)] == ["labels"]
    assert json.load(open(os.path.join(out, "settings.json")))["strategies"] == ["labels"]


def test_a_missing_teacher_file_leaves_no_run_behind(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match=r"No model file at '.*missing\.keras'"):
        small_run(str(out), teacher=str(tmp_path / "missing.keras"), strategy_names=["labels"])
    assert not (out / "settings.json").exists() and not (out / ".lock").exists()
    # So the corrected command is not refused as a run already there.
    assert not compare.run_directory.is_run_directory(str(out))


def test_settings_are_checked_before_the_output_directory_is_made(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"argument `student_widths`. Expected positive integers"):
        small_run(str(out), student_widths=[])
    with pytest.raises(ValueError, match=r"argument `epochs`. Expected an integer >= 1"):
        small_run(str(out), epochs=0)
    with pytest.raises(ValueError, match=r"argument `learning_rate`. Expected a positive number"):
        small_run(str(out), learning_rate=0.0)
    assert not out.exists()


@pytest.mark.slow
def test_compare_explains_the_recommended_student_and_links_it_from_the_report(tmp_path):
    # A run of its own: another test resumes `finished` with more strategies, which changes
    # its recommendation and rewrites its explain/ folder.
    finished = small_run(str(tmp_path / "run"), budget=pareto.Budget(max_size_kb=6.0))
    out = finished.output_dir
    for name in ("per_class.png", "disagreements.png", "reliability.png", "gallery.png"):
        assert os.path.getsize(os.path.join(out, "explain", name)) > 5_000, name
    summary = json.load(open(os.path.join(out, "explain", "explain.json")))
    pick = finished.recommendation["record"] or finished.recommendation["closest"]
    assert summary["student"].startswith(f"{pick['strategy']} ({pick['student']}), ")
    # The same .tflite file and test split as the record's accuracy.
    assert summary["student_accuracy"] == pytest.approx(pick["accuracy"], abs=1e-9)
    assert summary["teacher_accuracy"] == pytest.approx(finished.teacher["accuracy"], abs=2e-3)
    report_text = open(os.path.join(out, "report.md")).read()
    assert "[explain/explain.md](explain/explain.md)" in report_text
