"""`kdistill compare`: run compression strategies, measure, recommend.

For one teacher and one dataset, trains students with each strategy (see
`kdistill.strategies`), exports each to TFLite, and measures the exported
file: accuracy, teacher agreement, size (raw and gzip) and latency. Results are
written after every strategy; the end of the run adds the Pareto front
(accuracy against size), a recommendation under the user's budgets, a
Markdown report and a plot.

Example:
    >>> result = run(dataset="digits", strategies=["labels", "kd", "kd+int8"],
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

from kdistill import (
    atomic,
    backend,
    compression,
    data,
    export,
    models,
    parallel,
    pareto,
    report,
    saving,
    strategies,
    tflite,
    training,
    validation,
)
from kdistill import losses as losses_lib
from kdistill.backend import keras, tf
from kdistill.offline import cache_teacher_outputs


@dataclasses.dataclass
class CompareResult:
    """What `run` returns.

    Attributes:
        records: One dict per (strategy, student), as in results.json.
        teacher: The teacher's measurements (float32 TFLite).
        recommendation: See `kdistill.pareto.recommend`.
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
            `kdistill.strategies.default_names()`).
        repeats: Seeds per strategy; records report mean and std.
        budget: A `kdistill.pareto.Budget` for the recommendation.
        output_dir: Where to write (default kdistill_runs/<timestamp>).
        resume: An earlier run's directory: finished strategies are kept and
            not rerun; new results are written there.
        epochs: Student training epochs.
        teacher_epochs: Epochs of the built-in teacher.
        seed: First seed; repeat i uses seed + i.
        max_train: Use at most this many training samples.
        latency_samples: Samples timed for latency.
        unsafe_load: Allow `.keras` files that run stored code.
        verbose: Print a live line per strategy.
        workers: Worker processes that run strategies in parallel (see
            `kdistill.parallel`); results equal a sequential run's, apart
            from measured latency. Each worker loads the teacher and the
            student architecture from `.keras` files, so custom layers must
            be registered with Keras in an importable module.

    Returns:
        A `CompareResult`.
    """
    started = time.perf_counter()
    names = list(strategy_names or strategies.default_names())
    parsed = [strategies.parse(n) for n in names]
    validation.check_integer(repeats, "repeats", minimum=1)
    parallel.check_workers(workers)
    budget = budget or pareto.Budget()
    split = data.load(dataset, data_path, seed=seed, max_train=max_train)
    out = (
        resume
        or output_dir
        or os.path.join("kdistill_runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    )
    if resume and not os.path.isdir(resume):
        raise ValueError(
            f"Invalid value for argument `resume`: {resume!r} is not a directory of an earlier run."
        )
    atomic.ensure_directory(out)
    say = print if verbose else (lambda *a, **k: None)

    teacher_model = _teacher(teacher, split, out, teacher_epochs, seed, unsafe_load, say)
    teacher_test = training.predict_logits(teacher_model, split.x_test)
    teacher_train = cache_teacher_outputs(teacher_model, split.x_train)
    teacher_file = export.convert(teacher_model, "none")
    teacher_report = tflite.evaluate_tflite(
        teacher_file, split.x_test, split.y_test, latency_samples=latency_samples
    )
    teacher_record = {
        "student": "teacher",
        "params": int(teacher_model.count_params()),
        "tflite_size_bytes": teacher_report["size_bytes"],
        "gzip_size_bytes": teacher_report["gzip_size_bytes"],
        "accuracy": teacher_report["accuracy"],
        "latency_ms": teacher_report["latency_ms_median"],
    }
    say(
        f"Teacher: {teacher_record['params']} params, "
        f"TFLite accuracy {teacher_record['accuracy']:.4f}, "
        f"{teacher_record['tflite_size_bytes'] / 1024:.1f} KB"
    )

    architectures = _architectures(student, student_widths, split, unsafe_load)
    records = [r for r in report.load_results(out) if r.get("status") == "ok"] if resume else []
    done = {(r["strategy"], r["student"]) for r in records}
    units = [(label, s) for label in architectures for s in parsed if (s.name, label) not in done]
    if done:
        say(f"Resuming {out}: {len(done)} finished strategies kept, {len(units)} to run.")
    models_dir = os.path.join(out, "models")
    os.makedirs(models_dir, exist_ok=True)
    unit_times = []
    kept = len(records)
    order = {}

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

    if workers == 1:
        context = _Context(
            split,
            teacher_model,
            teacher_train,
            teacher_test,
            teacher_record,
            epochs,
            latency_samples,
        )
        trained = {}
        for index, (label, strategy) in enumerate(units):
            unit_start = time.perf_counter()
            record = run_unit(
                context, strategy, label, architectures[label], seed, repeats, trained, models_dir
            )
            record["elapsed_s"] = round(time.perf_counter() - unit_start, 2)
            on_record(index, record)
    elif units:
        setup = {
            "dataset": dataset,
            "data_path": data_path,
            "seed": seed,
            "max_train": max_train,
            "repeats": repeats,
            "epochs": epochs,
            "latency_samples": latency_samples,
            "unsafe_load": unsafe_load,
            "teacher_record": teacher_record,
            "teacher_path": (
                os.path.join(out, "teacher.keras")  # the built-in teacher, saved by _teacher
                if teacher is None
                else _model_path(teacher, os.path.join(out, "teacher.keras"))
            ),
            "student_path": None
            if student is None
            else _model_path(student, os.path.join(out, "student.keras")),
            "student_widths": list(student_widths),
            "teacher_outputs_path": _save_arrays(
                os.path.join(out, ".teacher_outputs.npz"), train=teacher_train, test=teacher_test
            ),
            "models_dir": models_dir,
            "output_dir": out,
        }
        jobs = [
            [(i, units[i][0], units[i][1].name) for i in group]
            for group in parallel.group_units(units)
        ]
        say(f"Running {len(units)} strategies in {workers} worker processes ...", flush=True)
        parallel.run_jobs(setup, jobs, workers, on_record)
        os.remove(setup["teacher_outputs_path"])
    # Finished strategies in run order, whatever order the workers finished in.
    records[kept:] = sorted(records[kept:], key=lambda r: order[id(r)])

    pareto.mark_pareto(records)
    recommendation = pareto.recommend(records, budget)
    report.write_results(out, records)
    _keep_front_models(models_dir, records)
    settings = {
        "dataset": split.name,
        "train/val/test samples": f"{len(split.x_train)}/{len(split.x_val)}/{len(split.x_test)}",
        "strategies": ", ".join(names),
        "students": ", ".join(architectures),
        "workers": workers,
        "epochs": epochs,
        "repeats": repeats,
        "seeds": ", ".join(str(seed + i) for i in range(repeats)),
        "budget": budget.describe(),
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
    return CompareResult(records, teacher_record, recommendation, out)


@dataclasses.dataclass
class _Context:
    split: data.Split
    teacher: object
    teacher_train: np.ndarray
    teacher_test: np.ndarray
    teacher_record: dict
    epochs: int
    latency_samples: int


def run_unit(context, strategy, label, make_student, seed, repeats, trained, models_dir) -> dict:
    record = {
        "strategy": strategy.name,
        "student": label,
        "status": "failed",
        "pareto": False,
        "seeds": [seed + i for i in range(repeats)],
    }
    runs = []
    try:
        for i in range(repeats):
            key = (label, strategy.training_key, seed + i)
            if key not in trained:
                trained[key] = _train(context, strategy, make_student, seed + i)
            student = trained[key]
            flatbuffer = export.convert(
                student, strategy.quantization, representative_data=context.split.x_train[:500]
            )
            measured = tflite.evaluate_tflite(
                flatbuffer,
                context.split.x_test,
                context.split.y_test,
                reference_logits=context.teacher_test,
                latency_samples=context.latency_samples,
            )
            measured["params"] = int(student.count_params())
            runs.append(measured)
            if i == 0:
                atomic.write_bytes(
                    os.path.join(models_dir, _model_file(strategy.name, label)), flatbuffer
                )
    except Exception as error:  # noqa: BLE001 - one failed strategy must not stop the run
        record["error"] = f"{type(error).__name__}: {error}"
        return record
    accuracies = [r["accuracy"] for r in runs]
    record.update(
        status="ok",
        params=runs[0]["params"],
        tflite_size_bytes=runs[0]["size_bytes"],
        gzip_size_bytes=runs[0]["gzip_size_bytes"],
        accuracy=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        accuracies=accuracies,
        teacher_agreement=float(np.mean([r["agreement"] for r in runs])),
        latency_ms=float(np.median([r["latency_ms_median"] for r in runs])),
        latency_ms_p95=float(np.median([r["latency_ms_p95"] for r in runs])),
        compression_ratio=context.teacher_record["tflite_size_bytes"] / runs[0]["size_bytes"],
    )
    return record


def _train(context, strategy, make_student, seed):
    split = context.split
    keras.utils.set_random_seed(seed)
    student = make_student()
    settings = training.FitSettings(
        epochs=context.epochs, batch_size=32, learning_rate=1e-2, seed=seed
    )

    def fit(model, stage_settings, callbacks=()):
        if strategy.training == "labels":
            return training.fit_supervised(model, split, stage_settings, callbacks=list(callbacks))
        return training.fit_distilled(
            context.teacher,
            model,
            split,
            stage_settings,
            distillation_loss=_losses(strategy, context.teacher, model),
            alpha=strategy.alpha,
            callbacks=list(callbacks),
            teacher_outputs=context.teacher_train,
            validate=False,
        ).student

    if not strategy.sparsity:
        return fit(compression.quantize_aware(student) if strategy.qat else student, settings)
    pruned = compression.prune_over_training(
        student, strategy.sparsity, settings.epochs, len(split.x_train), settings.batch_size
    )
    trained = compression.strip(fit(pruned, settings, compression.callbacks(pruned)))
    if not strategy.qat:
        return trained
    # QAT fine-tunes the pruned student with tfmot's prune-preserving scheme, so its
    # zeros reach the int8 file.
    aware = compression.quantize_aware(trained, preserve_sparsity=True)
    return fit(aware, training.fine_tuning(settings))


def load_worker_context(setup: dict):
    """Rebuilds, in a worker process, what `run_unit` needs (see `kdistill.parallel`).

    Returns:
        `(context, architectures)`: a `_Context` and `{label: make_student}`.
    """
    split = data.load(
        setup["dataset"], setup["data_path"], seed=setup["seed"], max_train=setup["max_train"]
    )
    teacher = saving.load_model(setup["teacher_path"], unsafe=setup["unsafe_load"])
    with np.load(setup["teacher_outputs_path"]) as cached:
        teacher_train, teacher_test = cached["train"], cached["test"]
    context = _Context(
        split,
        teacher,
        teacher_train,
        teacher_test,
        setup["teacher_record"],
        setup["epochs"],
        setup["latency_samples"],
    )
    return context, _architectures(
        setup["student_path"], setup["student_widths"], split, setup["unsafe_load"]
    )


def _model_path(model, default_path: str) -> str:
    """`model` itself if it is a path; else saves it (atomically) to `default_path`."""
    if isinstance(model, str):
        return model
    tmp = default_path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, default_path)
    return default_path


def _save_arrays(path: str, **arrays) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic.write_bytes(path, buffer.getvalue())
    return path


def _losses(strategy, teacher, student):
    if strategy.training == "kd":
        return losses_lib.SoftTargetKD(strategy.temperature)
    if strategy.training == "mse":
        if strategy.mse_lambda is None:
            return losses_lib.LogitMSE()
        return losses_lib.LogitMSE(reduction="sum")
    if strategy.training == "dkd":
        return losses_lib.DecoupledKD()
    if strategy.training == "hint":
        return [
            losses_lib.SoftTargetKD(strategy.temperature),
            losses_lib.HintLoss(_hint_layer(teacher), _hint_layer(student)),
        ]
    raise ValueError(f"Unknown training stage {strategy.training!r}.")


def _hint_layer(model) -> str:
    # The layer before the logits: the last hidden representation.
    return model.layers[-2].name


def _teacher(teacher, split, out, epochs, seed, unsafe_load, say):
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
    )
    _model_path(model, saved)
    return model


def _architectures(student, widths, split, unsafe_load) -> dict:
    """`{label: make_student}`: "custom" for a given student, else "w<width>" per width."""
    if student is not None:
        template = (
            saving.load_model(student, unsafe=unsafe_load) if isinstance(student, str) else student
        )
        validation.check_model(template, "student")
        return {"custom": lambda: keras.models.clone_model(template)}
    widths = list(widths)
    if not widths:
        raise ValueError(
            "Invalid value for argument `student_widths`. Expected positive integers. "
            f"Received: student_widths={widths!r}"
        )
    for width in widths:
        validation.check_integer(width, "student_widths", minimum=1)
    shape, classes = split.input_shape, split.num_classes
    return {f"w{w}": (lambda w=w: models.student_for(shape, classes, w)) for w in widths}


def _model_file(strategy_name, label) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in strategy_name.replace("+", "-"))
    return f"{safe}_{label}.tflite"


def _keep_front_models(models_dir, records):
    keep = {_model_file(r["strategy"], r["student"]) for r in records if r.get("pareto")}
    for name in os.listdir(models_dir):
        if name.endswith(".tflite") and name not in keep:
            os.remove(os.path.join(models_dir, name))
