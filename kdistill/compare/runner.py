"""The orchestrator of `kdistill compare`: run strategies, measure, recommend.

For one teacher and one dataset, trains students with each strategy (see
`kdistill.compare.strategies`), exports each to TFLite, and measures the exported
file: accuracy, teacher agreement, size (raw and gzip) and latency. Results are
written after every strategy; the end of the run adds the Pareto front
(accuracy against size), a recommendation under the user's budgets, a
Markdown report and a plot.

`run` goes step by step: check the settings, load the data, train (or load)
and measure the teacher, list the units left to run, run them (`jobs`),
and finish (Pareto front, recommendation, report, plot).

Example:
    >>> result = run(dataset="digits", strategy_names=["labels", "kd", "kd+int8"],
    ...              student_widths=[16], output_dir="runs/digits")
    >>> print(result.recommendation["message"])
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import os
import platform
import time

import numpy as np

from kdistill import atomic, backend, data, export, saving, tflite, training, validation
from kdistill.backend import keras, tf
from kdistill.compare import halving, jobs, pareto, report, run_directory, search, strategies
from kdistill.compare import teacher as teacher_lib
from kdistill.compare.explanation import explain_recommendation
from kdistill.offline import cache_teacher_outputs


@dataclasses.dataclass
class CompareResult:
    """What `run` returns.

    Attributes:
        records: One dict per (strategy, student), as in results.json.
        teacher: The teacher's measurements (float32 TFLite).
        recommendation: See `kdistill.compare.pareto.recommend`.
        output_dir: Where the files are.
        hundredfold: See `kdistill.compare.pareto.smallest_within` (100x
            smaller than the teacher's float32 file, within 1 point).
        timings: Wall seconds by part: "teacher" (training or loading it),
            "students" (probes and training), "export" (conversion and
            measurement of every file), "total".
    """

    records: list
    teacher: dict
    recommendation: dict
    output_dir: str
    hundredfold: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)


def run(
    dataset: str = "digits",
    data_path: str | None = None,
    teacher=None,
    student=None,
    student_widths=(16, 64),
    strategy_names=None,
    repeats: int = 1,
    budget: pareto.Budget | None = None,
    output_dir: str | None = None,
    resume: str | None = None,
    epochs: int | None = None,
    teacher_epochs: int | None = None,
    seed: int = 0,
    max_train: int | None = None,
    latency_samples: int = 100,
    unsafe_load: bool = False,
    verbose: bool = True,
    workers: int = 1,
    overwrite: bool = False,
    batch_size: int = 32,
    learning_rate: float = 1e-2,
    search_mode: str = "auto",
    patience: int = 3,
    teacher_cache_dir: str | None = None,
    retrain_teacher: bool = False,
) -> CompareResult:
    """Runs the strategies and writes results, report and plot.

    Args:
        dataset: Built-in dataset name (see `kdistill.data.load`).
        data_path: An `.npz` file instead of `dataset`.
        teacher: A Keras model or a `.keras` path; default: a built-in
            teacher trained here.
        student: A Keras model or `.keras` path used as the (re-initialised)
            student architecture; default: built-in students at
            `student_widths`.
        student_widths: Widths of the built-in students.
        strategy_names: Strategy names (default
            `kdistill.compare.strategies.default_names()`).
        repeats: Seeds per strategy; records report mean and std.
        budget: A `kdistill.compare.pareto.Budget` for the recommendation.
        output_dir: Where to write (default kdistill_runs/<timestamp>). A
            directory that holds a run (results.json or settings.json) is
            refused unless `resume` names it or `overwrite` is True.
        resume: An earlier run's directory: finished strategies are kept and
            not rerun; new results are written there. The settings that
            define a run must equal the stored ones (see `run_directory.run_settings`);
            strategies may be added, and the budget, `workers`,
            `latency_samples` and `verbose` may change. `output_dir`, if
            given, must be the same directory.
        epochs: Student training epochs (default: 30, or 15 for 10,000
            training samples and more; see `training.default_epochs`).
        teacher_epochs: Epochs of the built-in teacher (default: 40, or 15
            for 10,000 training samples and more).
        seed: First seed; repeat i uses seed + i.
        max_train: Use at most this many training samples.
        latency_samples: Samples timed for latency.
        unsafe_load: Allow `.keras` files that run stored code.
        verbose: Print a line per epoch of the built-in teacher (with the
            time left), progress of each student, and a live line per
            strategy.
        workers: Worker processes that run strategies in parallel (see
            `kdistill.compare.jobs`); results equal a sequential run's, apart
            from measured latency. Each worker loads the teacher and the
            student architecture from `.keras` files, so custom layers must
            be registered with Keras in an importable module.
        overwrite: Replace the run in `output_dir` (its results, report,
            teacher and models are deleted first).
        batch_size: Batch size of the students.
        learning_rate: Adam learning rate of the students.
        search_mode: "halving": every training job first trains for a
            quarter of the epochs, and only those that can still reach the
            Pareto front on validation accuracy continue (see
            `kdistill.compare.search`); students stop early after `patience`
            epochs without a gain in validation accuracy. Runs of under 8
            epochs (or of one training job) are not halved. "exhaustive":
            every strategy trains for all epochs. "auto" (default): halving
            for 10,000 training samples and more; exhaustive below, where
            each fit is short enough that a probe costs about as much as
            the fit, and the validation split too small to rank strategies
            (digits: 144 samples; measured in benchmarks/README.md).
        patience: Early-stopping patience of the students (halving only).
        teacher_cache_dir: A folder of built-in teachers trained by earlier
            runs (see `kdistill.compare.teacher_cache`): one trained on the
            same data, architecture, epochs and seed is loaded instead of
            trained, and a newly trained one is stored. None: no cache.
        retrain_teacher: Train the built-in teacher even when the cache
            holds it (and replace the cached one).

    Returns:
        A `CompareResult`.

    Raises:
        ValueError: A setting is invalid, `output_dir` holds a run and
            neither `resume` nor `overwrite` is given, or `resume` is given
            settings that differ from the run's (each difference is named).
        kdistill.atomic.DirectoryLockedError: Another running process is
            writing to the output directory.
    """
    started = time.perf_counter()
    names, out = _check_settings(strategy_names, repeats, workers, output_dir, resume, overwrite)
    for value, name in ((epochs, "epochs"), (teacher_epochs, "teacher_epochs")):
        if value is not None:
            validation.check_integer(value, name, minimum=1)
    if search_mode not in SEARCH_MODES:
        raise ValueError(
            f"Invalid value for argument `search_mode`. Expected one of {', '.join(SEARCH_MODES)}. "
            f"Received: search_mode={search_mode!r}"
        )
    validation.check_integer(patience, "patience", minimum=1)
    validation.check_integer(batch_size, "batch_size", minimum=1)
    validation.check_positive(learning_rate, "learning_rate")
    validation.check_integer(latency_samples, "latency_samples", minimum=1)
    validation.check_integer(seed, "seed", minimum=0)
    if max_train is not None:
        validation.check_integer(max_train, "max_train", minimum=1)
    if student is None:
        jobs.check_widths(student_widths)
    budget = budget or pareto.Budget()
    atomic.ensure_directory(out)
    with atomic.run_directory_lock(out):  # one writer per run directory
        run_directory.check_run_directory(out, resume, overwrite)
        split = data.load(dataset, data_path, seed=seed, max_train=max_train)
        epochs = epochs or training.default_epochs(len(split.y_train))
        teacher_epochs = teacher_epochs or training.default_epochs(len(split.y_train), teacher=True)
        if search_mode == "auto":
            large = len(split.y_train) >= training.LARGE_DATASET
            search_mode = "halving" if large else "exhaustive"
        say = print if verbose else (lambda *a, **k: None)
        for given in (teacher, student):
            if isinstance(given, str) and not os.path.isfile(given):
                saving.load_model(given)  # says what is missing, before settings.json is written
        defining = run_directory.run_settings(
            split,
            data_path=data_path,
            teacher=teacher,
            teacher_epochs=teacher_epochs,
            student=student,
            student_widths=student_widths,
            epochs=epochs,
            seed=seed,
            repeats=repeats,
            batch_size=batch_size,
            learning_rate=learning_rate,
        )
        defining["search"] = search_mode if search_mode == "exhaustive" else f"halving, {patience}"
        defining["students_lr_schedule"] = training.student_schedule(len(split.y_train))
        if overwrite:
            run_directory.clear_run(out, say)
        run_directory.store_settings(out, defining, names, resume)

        teacher_model, teacher_training = teacher_lib.obtain(
            teacher,
            split,
            out,
            teacher_epochs,
            seed,
            unsafe_load,
            say,
            (teacher_cache_dir, retrain_teacher),
        )
        timings = {"teacher": time.perf_counter() - started}
        teacher_record = _measure_teacher(teacher_model, split, latency_samples, say)
        timings["export"] = time.perf_counter() - started - timings["teacher"]
        teacher_record["training"] = teacher_training
        context = jobs.Context(
            split=split,
            teacher=teacher_model,
            teacher_train=cache_teacher_outputs(teacher_model, split.x_train),
            teacher_test=training.predict_logits(teacher_model, split.x_test),
            teacher_record=teacher_record,
            architectures=jobs.architectures(student, student_widths, split, unsafe_load),
            epochs=epochs,
            seed=seed,
            repeats=repeats,
            latency_samples=latency_samples,
            models_dir=os.path.join(out, "models"),
            verbose=verbose,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience if search_mode == "halving" else None,
            lr_schedule=training.student_schedule(len(split.y_train)),
        )
        records, units = _units(context, names, out, resume, say)
        os.makedirs(context.models_dir, exist_ok=True)
        searched = {}
        if search_mode == "halving":
            units, searched = halving.probe_and_choose(context, units, records, out, say, timings)
        runner = context
        if workers > 1 and units:
            given = dict(teacher=teacher, student=student, student_widths=student_widths)
            runner = _worker_setup(context, out, given, unsafe_load, dataset, data_path, max_train)
            say(f"Running {len(units)} strategies in {workers} worker processes ...", flush=True)
        _run_units(runner, units, workers, records, out, started, say, searched, timings)
        if runner is not context:
            os.remove(runner.teacher_outputs_path)

        settings = {
            "dataset": split.name,
            "train/val/test samples": "/".join(
                str(len(x)) for x in (split.x_train, split.x_val, split.x_test)
            ),
            "strategies": ", ".join(names),
            "students": ", ".join(context.architectures),
            "workers": workers,
            "epochs": epochs,
            "search": _describe_search(search_mode, context),
            "batch size, learning rate": f"{batch_size}, {learning_rate:g} ({context.lr_schedule})",
            "repeats": repeats,
            "seeds": ", ".join(str(seed + i) for i in range(repeats)),
            "budget": budget.describe(),
            "teacher training": teacher_lib.describe(teacher_training),
            "wall time by part": ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()),
        }
        recommendation, hundredfold = _finish(
            out, records, teacher_record, budget, settings, started, say, context
        )
        timings["total"] = time.perf_counter() - started
        timings = {key: round(value, 1) for key, value in timings.items()}
        return CompareResult(records, teacher_record, recommendation, out, hundredfold, timings)


SEARCH_MODES = ("auto", "halving", "exhaustive")


def _describe_search(search_mode, context) -> str:
    probe = search.probe_epochs(context.epochs)
    if search_mode == "exhaustive":
        return "exhaustive (every strategy for all epochs)"
    return (
        f"successive halving (probe of {probe} epochs; runs under 8 epochs are not halved), "
        f"early stopping after {context.patience} epochs without a gain in validation accuracy"
    )


def _check_settings(strategy_names, repeats, workers, output_dir, resume, overwrite) -> tuple:
    """Checks the settings before any work; returns (strategy names, output dir)."""
    names = list(strategy_names or strategies.default_names())
    for name in names:
        strategies.parse(name)
    validation.check_integer(repeats, "repeats", minimum=1)
    jobs.check_workers(workers)
    atomic.check_run_arguments(resume, output_dir, overwrite)
    timestamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return names, resume or output_dir or os.path.join("kdistill_runs", timestamp)


def _measure_teacher(teacher_model, split, latency_samples, say) -> dict:
    """Exports the teacher to float32 TFLite and measures it: the reference row."""
    measured = tflite.evaluate_tflite(
        export.convert(teacher_model, "none"),
        split.x_test,
        split.y_test,
        latency_samples=latency_samples,
    )
    record = {
        "student": "teacher",
        "params": int(teacher_model.count_params()),
        "tflite_size_bytes": measured["size_bytes"],
        "gzip_size_bytes": measured["gzip_size_bytes"],
        "accuracy": measured["accuracy"],
        "latency_ms": measured["latency_ms_median"],
    }
    say(
        f"Teacher: {record['params']} params, TFLite accuracy {record['accuracy']:.4f}, "
        f"{record['tflite_size_bytes'] / 1024:.1f} KB"
    )
    return record


def _units(context, names, out, resume, say) -> tuple[list, list]:
    """The records kept from `resume` and the (label, Strategy) units left to run."""
    records = [r for r in report.load_results(out) if r.get("status") == "ok"] if resume else []
    done = {(r["strategy"], r["student"]) for r in records}
    parsed = [strategies.parse(n) for n in names]
    units = [
        (label, s) for label in context.architectures for s in parsed if (s.name, label) not in done
    ]
    if done:
        say(f"Resuming {out}: {len(done)} finished strategies kept, {len(units)} to run.")
    return records, units


def _worker_setup(
    context, out, given, unsafe_load, dataset, data_path, max_train
) -> jobs.WorkerSetup:
    """Writes what worker processes load (models, teacher outputs) and describes it."""
    outputs_path = os.path.join(out, ".teacher_outputs.npz")
    buffer = io.BytesIO()
    np.savez(buffer, train=context.teacher_train, test=context.teacher_test)
    atomic.write_bytes(outputs_path, buffer.getvalue())
    teacher_path = os.path.join(out, "teacher.keras")  # the built-in teacher, saved by _teacher
    fields = ("teacher_record", "epochs", "seed", "repeats", "latency_samples", "models_dir")
    fields += ("batch_size", "learning_rate", "patience", "lr_schedule")
    return jobs.WorkerSetup(
        dataset=dataset,
        data_path=data_path,
        max_train=max_train,
        teacher_path=teacher_path
        if given["teacher"] is None
        else _model_path(given["teacher"], teacher_path),
        teacher_outputs_path=outputs_path,
        student_path=None
        if given["student"] is None
        else _model_path(given["student"], os.path.join(out, "student.keras")),
        student_widths=list(given["student_widths"]),
        unsafe_load=unsafe_load,
        output_dir=out,
        context={f: getattr(context, f) for f in (*fields, "verbose")},
    )


def _run_units(runner, units, workers, records, out, started, say, searched, timings) -> None:
    """Runs the units (grouped into jobs) and writes results after each one.

    Finished records are appended to `records` in run order, whatever order
    worker processes finish them in. `searched` holds the halving's choice
    by unit index (added to the records); `timings` gains "students" and
    "export" (the export's share is each record's `export_s`).
    """
    kept = len(records)
    order, unit_times = {}, []
    units_started = time.perf_counter()

    def on_record(index, record):
        order[id(record)] = index
        if index in searched:
            record["search"] = searched[index]
        records.append(record)
        pareto.mark_pareto(records)
        report.write_results(out, records)
        unit_times.append(record["elapsed_s"])
        left = np.mean(unit_times) * (len(units) - len(unit_times)) / workers
        outcome = (
            f"accuracy {record['accuracy']:.4f}, {record['tflite_size_bytes'] / 1024:.1f} KB"
            if record["status"] == "ok"
            else f"FAILED: {record['error'][:200]}"
        )
        say(
            f"[{len(unit_times)}/{len(units)}] {record['strategy']} ({record['student']}): "
            f"{outcome}; {record['elapsed_s']:.1f}s, "
            f"elapsed {time.perf_counter() - started:.0f}s, ~{left:.0f}s left",
            flush=True,
        )

    job_list = [
        [(i, units[i][0], units[i][1].name) for i in group] for group in jobs.group_units(units)
    ]
    if units:
        jobs.run_jobs(runner, job_list, workers, on_record)
    records[kept:] = sorted(records[kept:], key=lambda r: order[id(r)])
    export_s = sum(r.get("export_s", 0.0) for r in records[kept:])
    timings["export"] = timings.get("export", 0.0) + export_s
    timings["students"] = (
        timings.get("probes", 0.0) + time.perf_counter() - units_started - export_s
    )


def _finish(out, records, teacher_record, budget, settings, started, say, context) -> tuple:
    """Marks the front, recommends, explains the pick, and writes results, report and plot."""
    pareto.mark_pareto(records)
    recommendation = pareto.recommend(records, budget)
    # After the front is marked, so it explains the recommendation itself; report.md links it.
    explain_recommendation(out, context, records, budget, say)
    hundredfold = pareto.smallest_within(records, teacher_record, ratio=100.0, points=1.0)
    report.write_results(out, records)
    _keep_front_models(os.path.join(out, "models"), records)
    settings = {
        **settings,
        "teacher": f"{teacher_record['params']} params, accuracy {teacher_record['accuracy']:.4f}",
        "keras": f"{backend.KERAS_NAME} {getattr(keras, '__version__', '')}".strip(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "wall time": f"{time.perf_counter() - started:.0f}s",
    }
    report.write_report(out, records, teacher_record, recommendation, settings, hundredfold)
    report.plot(out, records, teacher_record)
    say("\n" + report.table(records, teacher_record))
    say(recommendation["message"])
    say("100x question: " + hundredfold["message"])
    say(
        f"\nWrote {out}/results.json, results.csv, report.md, pareto.png "
        "and models/ (the Pareto front)."
    )
    return recommendation, hundredfold


def _model_path(model, default_path: str) -> str:
    """`model` itself if it is a path; else saves it (atomically) to `default_path`."""
    if isinstance(model, str):
        return model
    return teacher_lib.save_model(model, default_path)


def _keep_front_models(models_dir, records):
    # Only the front's models are worth shipping; the rest would fill the disk.
    keep = {jobs.model_file(r["strategy"], r["student"]) for r in records if r.get("pareto")}
    for name in os.listdir(models_dir):
        if name.endswith(".tflite") and name not in keep:
            os.remove(os.path.join(models_dir, name))
