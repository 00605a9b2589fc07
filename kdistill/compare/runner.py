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

from kdistill import atomic, backend, data, export, models, saving, tflite, training, validation
from kdistill.backend import keras, tf
from kdistill.callbacks import EpochProgress
from kdistill.compare import jobs, pareto, report, run_directory, strategies
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
    """

    records: list
    teacher: dict
    recommendation: dict
    output_dir: str


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
    epochs: int = 30,
    teacher_epochs: int = 40,
    seed: int = 0,
    max_train: int | None = None,
    latency_samples: int = 100,
    unsafe_load: bool = False,
    verbose: bool = True,
    workers: int = 1,
    overwrite: bool = False,
    batch_size: int = 32,
    learning_rate: float = 1e-2,
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
        epochs: Student training epochs.
        teacher_epochs: Epochs of the built-in teacher.
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
        validation.check_integer(value, name, minimum=1)
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
        if overwrite:
            run_directory.clear_run(out, say)
        run_directory.store_settings(out, defining, names, resume)

        teacher_model = _teacher(teacher, split, out, teacher_epochs, seed, unsafe_load, say)
        teacher_record = _measure_teacher(teacher_model, split, latency_samples, say)
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
        )
        records, units = _units(context, names, out, resume, say)
        os.makedirs(context.models_dir, exist_ok=True)
        runner = context
        if workers > 1 and units:
            given = dict(teacher=teacher, student=student, student_widths=student_widths)
            runner = _worker_setup(context, out, given, unsafe_load, dataset, data_path, max_train)
            say(f"Running {len(units)} strategies in {workers} worker processes ...", flush=True)
        _run_units(runner, units, workers, records, out, started, say)
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
            "batch size, learning rate": f"{batch_size}, {learning_rate:g}",
            "repeats": repeats,
            "seeds": ", ".join(str(seed + i) for i in range(repeats)),
            "budget": budget.describe(),
        }
        explain_recommendation(out, context, records, budget, say)  # explain/, linked by report
        recommendation = _finish(out, records, teacher_record, budget, settings, started, say)
        return CompareResult(records, teacher_record, recommendation, out)


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
    fields += ("batch_size", "learning_rate")
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


def _run_units(runner, units, workers, records, out, started, say) -> None:
    """Runs the units (grouped into jobs) and writes results after each one.

    Finished records are appended to `records` in run order, whatever order
    worker processes finish them in.
    """
    kept = len(records)
    order, unit_times = {}, []

    def on_record(index, record):
        order[id(record)] = index
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


def _finish(out, records, teacher_record, budget, settings, started, say) -> dict:
    """Marks the front, recommends, and writes results, report, plot and front models."""
    pareto.mark_pareto(records)
    recommendation = pareto.recommend(records, budget)
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
    report.write_report(out, records, teacher_record, recommendation, settings)
    report.plot(out, records, teacher_record)
    say("\n" + report.table(records, teacher_record))
    say(recommendation["message"])
    say(
        f"\nWrote {out}/results.json, results.csv, report.md, pareto.png "
        "and models/ (the Pareto front)."
    )
    return recommendation


def _model_path(model, default_path: str) -> str:
    """`model` itself if it is a path; else saves it (atomically) to `default_path`."""
    if isinstance(model, str):
        return model
    tmp = default_path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, default_path)
    return default_path


def _teacher(teacher, split, out, epochs, seed, unsafe_load, say):
    """The given teacher, the one saved in `out`, or a built-in one trained here."""
    if isinstance(teacher, str):
        return saving.load_model(teacher, unsafe=unsafe_load)
    if teacher is not None:
        validation.check_model(teacher, "teacher")
        return teacher
    saved = os.path.join(out, "teacher.keras")
    if os.path.exists(saved):
        say(f"Using the teacher saved in {saved}.")
        return saving.load_model(saved)
    say(f"Training the built-in teacher ({epochs} epochs) ...", flush=True)
    keras.utils.set_random_seed(seed)  # its initial weights too, whatever ran before
    model = training.fit_supervised(
        models.teacher_for(split.input_shape, split.num_classes),
        split,
        training.FitSettings(epochs=epochs, seed=seed),
        callbacks=[EpochProgress("teacher", print_fn=lambda line: say(line, flush=True))],
    )
    _model_path(model, saved)
    return model


def _keep_front_models(models_dir, records):
    # Only the front's models are worth shipping; the rest would fill the disk.
    keep = {jobs.model_file(r["strategy"], r["student"]) for r in records if r.get("pareto")}
    for name in os.listdir(models_dir):
        if name.endswith(".tflite") and name not in keep:
            os.remove(os.path.join(models_dir, name))
