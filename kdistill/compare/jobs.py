"""Runs `kdistill compare`'s jobs, in this process or in worker processes.

A unit is one (student, strategy) pair: train the student (or reuse it),
export it to TFLite and measure the file. Units that train the same student
(for example "kd" and "kd+int8", which differ only in how the trained student
is exported) form one job, so each student is trained once. `run_job` runs a
job; a sequential run calls it for each job here, and ``--workers N`` calls
it in N worker processes.

For workers, the parent writes the teacher, its cached outputs and the
student architecture to files (a `WorkerSetup`); each worker process
(started with "spawn", which is safe with TensorFlow's threads) loads them
once into a `Context`, then runs jobs. Training seeds the random generators
per student, so results do not depend on which process runs a job or in
what order. The parent is the only writer of results.json.

Example:
    >>> from kdistill.compare.strategies import parse
    >>> group_units([("w16", parse("kd")), ("w16", parse("labels")), ("w16", parse("kd+int8"))])
    [[0, 2], [1]]
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator

import numpy as np

from kdistill import atomic, compression, data, export, models, saving, tflite, training, validation
from kdistill.backend import keras, tf
from kdistill.callbacks import EpochProgress, ValidationAccuracyStopping
from kdistill.compare import strategies

STUDENT_PROGRESS_INTERVAL_S = 10.0
"""A student's fit prints a progress line at most this often (and its first
and last epoch), so many short fits stay quiet and long ones do not."""

_STATE: dict = {}  # the worker process's Context


@dataclasses.dataclass
class Context:
    """What running a unit needs: data, teacher, students and settings.

    Attributes:
        split: The data.
        teacher: The trained teacher model.
        teacher_train: The teacher's cached outputs on `split.x_train`.
        teacher_test: The teacher's outputs on `split.x_test`.
        teacher_record: The teacher's measurements (for compression ratios).
        architectures: `{label: make_student}` (see `architectures`).
        epochs: Student training epochs.
        seed: First seed; repeat i uses seed + i.
        repeats: Seeds per strategy.
        latency_samples: Samples timed for latency.
        models_dir: Where each unit's first `.tflite` file is written.
        verbose: Print per-epoch progress of each student.
        batch_size: Batch size of the students.
        learning_rate: Adam learning rate of the students.
        patience: Stop a student once its validation accuracy has not risen
            for this many epochs (restoring its best epoch); None trains
            every student for all `epochs`. Pruned and quantization-aware
            students always train in full (their schedules span the epochs).
        lr_schedule: The students' learning-rate schedule ("constant" or
            "cosine", over `epochs`; see `training.student_schedule`).
    """

    split: data.Split
    teacher: object
    teacher_train: np.ndarray
    teacher_test: np.ndarray
    teacher_record: dict
    architectures: dict
    epochs: int
    seed: int
    repeats: int
    latency_samples: int
    models_dir: str
    verbose: bool = False
    batch_size: int = 32
    learning_rate: float = 1e-2
    patience: int | None = None
    lr_schedule: str = "constant"


@dataclasses.dataclass
class WorkerSetup:
    """What a worker process rebuilds its `Context` from: plain values and paths.

    Attributes:
        dataset, data_path, max_train: The data, as given to `data.load`.
        teacher_path: The teacher's `.keras` file.
        teacher_outputs_path: An `.npz` file with the teacher's outputs
            ("train", "test").
        student_path: The student architecture's `.keras` file, or None for
            the built-in students at `student_widths`.
        student_widths: Widths of the built-in students.
        unsafe_load: Allow `.keras` files that run stored code.
        output_dir: The run's directory (named in errors).
        context: The remaining `Context` fields (settings and the teacher's
            record), by name.
    """

    dataset: str
    data_path: str | None
    max_train: int | None
    teacher_path: str
    teacher_outputs_path: str
    student_path: str | None
    student_widths: list
    unsafe_load: bool
    output_dir: str
    context: dict


def check_workers(workers) -> int:
    """Returns `workers` if it is an integer >= 1, else raises a clear error."""
    return validation.check_integer(workers, "workers", minimum=1)


def check_widths(widths) -> list:
    """Returns `widths` as a list if it holds positive integers, else raises a clear error."""
    widths = list(widths)
    if not widths:
        raise ValueError(
            "Invalid value for argument `student_widths`. Expected positive integers. "
            f"Received: student_widths={widths!r}"
        )
    for width in widths:
        validation.check_integer(width, "student_widths", minimum=1)
    return widths


def architectures(student, widths, split: data.Split, unsafe_load: bool = False) -> dict:
    """`{label: make_student}`: "custom" for a given student, else "w<width>" per width.

    Args:
        student: A Keras model or `.keras` path, re-initialised for every
            unit; or None for the built-in students.
        widths: Widths of the built-in students (used when `student` is None).
        split: The data (input shape and classes of the built-in students).
        unsafe_load: Allow `.keras` files that run stored code.

    Returns:
        A dict of labels to functions that build a fresh student.
    """
    if student is not None:
        template = (
            saving.load_model(student, unsafe=unsafe_load) if isinstance(student, str) else student
        )
        validation.check_model(template, "student")
        return {"custom": lambda: keras.models.clone_model(template)}
    widths = check_widths(widths)
    shape, classes = split.input_shape, split.num_classes
    return {f"w{w}": (lambda w=w: models.student_for(shape, classes, w)) for w in widths}


def group_units(units: list) -> list[list[int]]:
    """Groups the (student label, Strategy) units that share one trained student.

    Args:
        units: `(label, kdistill.compare.strategies.Strategy)` pairs in run order.

    Returns:
        Lists of indices into `units`, in order of first appearance; the units
        of one list differ only in export (equal label and `training_key`).
    """
    groups: dict = {}
    for index, (label, strategy) in enumerate(units):
        groups.setdefault((label, strategy.training_key), []).append(index)
    return list(groups.values())


def model_file(strategy_name: str, label: str) -> str:
    """The file name of a unit's `.tflite` model in the run's models/ folder."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in strategy_name.replace("+", "-"))
    return f"{safe}_{label}.tflite"


def run_job(context: Context, job: list) -> Iterator[tuple[int, dict]]:
    """Runs one job's units in order and yields `(unit index, record)` for each.

    Args:
        context: Data, teacher, students and settings.
        job: `(unit index, student label, strategy name)` triples; units that
            share a trained student (see `group_units`) train it once.

    Yields:
        `(unit index, record)`, the record with its `elapsed_s`.
    """
    trained: dict = {}
    for index, label, name in job:
        started = time.perf_counter()
        record = run_unit(context, strategies.parse(name), label, trained)
        record["elapsed_s"] = round(time.perf_counter() - started, 2)
        yield index, record


def run_unit(context: Context, strategy, label: str, trained: dict) -> dict:
    """Trains (or reuses), exports and measures one (student, strategy) unit.

    A failing unit returns a record with status "failed" and the error, so
    one broken strategy does not stop the run.

    Args:
        context: Data, teacher, students and settings.
        strategy: A `kdistill.compare.strategies.Strategy`.
        label: The student's label in `context.architectures`.
        trained: Students trained so far, by (label, training key, seed):
            (student, its `ValidationAccuracyStopping.summary()`), or a bare
            student; updated here.

    Returns:
        The unit's record, as in results.json (without `elapsed_s`).
    """
    seeds = [context.seed + i for i in range(context.repeats)]
    record = {
        "strategy": strategy.name,
        "student": label,
        "status": "failed",
        "pareto": False,
        "seeds": seeds,
    }
    runs = []
    try:
        for seed in seeds:
            key = (label, strategy.training_key, seed)
            if key not in trained:
                trained[key] = _train(context, strategy, label, seed)
            entry = trained[key]
            student, summary = entry if isinstance(entry, tuple) else (entry, None)
            if seed == seeds[0] and summary:
                record["training"] = summary
            exporting = time.perf_counter()
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
            record["export_s"] = round(
                record.get("export_s", 0.0) + time.perf_counter() - exporting, 2
            )
            if seed == seeds[0]:
                path = os.path.join(context.models_dir, model_file(strategy.name, label))
                atomic.write_bytes(path, flatbuffer)
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


def probe(context: Context, strategy, label: str, epochs: int) -> tuple[float, int, dict]:
    """Trains a unit's student briefly (first seed, no early stopping): the halving's probe.

    Args:
        context: Data, teacher, students and settings.
        strategy: A `kdistill.compare.strategies.Strategy`.
        label: The student's label in `context.architectures`.
        epochs: The probe's epochs.

    Returns:
        (validation accuracy after `epochs`, the student's parameter count,
        the training summary of `ValidationAccuracyStopping.summary`).
    """
    student, summary = _train(context, strategy, label, context.seed, epochs=epochs, stop=False)
    return summary["val_history"][-1], int(student.count_params()), summary


def _train(context: Context, strategy, label: str, seed: int, epochs=None, stop=True):
    """Trains one student; returns (student, `ValidationAccuracyStopping.summary()`)."""
    split = context.split
    keras.utils.set_random_seed(seed)
    student = context.architectures[label]()
    full_length = bool(strategy.sparsity or strategy.qat)  # schedules span every epoch
    patience = context.patience if stop and not full_length else None
    stopping = []
    settings = training.FitSettings(
        epochs=epochs or context.epochs,
        batch_size=context.batch_size,
        learning_rate=context.learning_rate,
        seed=seed,
        lr_schedule=context.lr_schedule,
        schedule_epochs=context.epochs,  # a probe is the start of the full run
    )
    progress = (
        [EpochProgress(f"{strategy.name} ({label})", min_interval_s=STUDENT_PROGRESS_INTERVAL_S)]
        if context.verbose
        else []
    )

    def fit(model, stage_settings, callbacks=()):
        stopping.append(ValidationAccuracyStopping(split.x_val, split.y_val, patience=patience))
        return training.fit_student(
            context.teacher,
            model,
            split,
            stage_settings,
            strategy,
            callbacks=list(callbacks) + [stopping[-1]] + progress,
            teacher_outputs=context.teacher_train,
        )

    # A probe is the first epochs of the full run: pruning keeps the full run's schedule.
    trained = _fit_stages(strategy, student, settings, fit, len(split.x_train), context.epochs)
    return trained, stopping[-1].summary()


def _fit_stages(strategy, student, settings, fit, samples: int, schedule_epochs: int):
    """Runs a strategy's training stages (pruning, QAT) with `fit`; returns the student.

    Pruning reaches its sparsity over `schedule_epochs` (the run's epochs),
    however many epochs `settings` trains.
    """
    if not strategy.sparsity:
        return fit(compression.quantize_aware(student) if strategy.qat else student, settings)
    pruned = compression.prune_over_training(
        student, strategy.sparsity, schedule_epochs, samples, settings.batch_size
    )
    trained = compression.strip(fit(pruned, settings, compression.callbacks(pruned)))
    if not strategy.qat:
        return trained
    # QAT fine-tunes the pruned student with tfmot's prune-preserving scheme, so its
    # zeros reach the int8 file.
    aware = compression.quantize_aware(trained, preserve_sparsity=True)
    return fit(aware, training.fine_tuning(settings))


def run_jobs(
    context: Context | WorkerSetup,
    jobs: list[list],
    workers: int,
    on_record: Callable[[int, dict], None],
) -> None:
    """Runs `jobs` and reports each unit's record as it finishes.

    Args:
        context: With `workers` 1, the `Context`; else the `WorkerSetup`
            each worker process rebuilds it from.
        jobs: Lists of `(unit index, label, strategy name)` (see `run_job`).
        workers: 1 runs the jobs here, in order; more runs them in that
            many worker processes.
        on_record: Called in this process as `on_record(unit_index, record)`
            for every unit, as it (or, with workers, its job) finishes.

    Raises:
        RuntimeError: A worker process died (killed, out of memory). Finished
            strategies are already in results.json: rerun with `--resume`.
    """
    if workers == 1:
        for job in jobs:
            for index, record in run_job(context, job):
                on_record(index, record)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    mp_context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=mp_context, initializer=_start_worker, initargs=(context, threads)
    ) as pool:
        futures = [pool.submit(_run_job_in_worker, job) for job in jobs]
        try:
            for future in concurrent.futures.as_completed(futures):
                for index, record in future.result():
                    on_record(index, record)
        except concurrent.futures.process.BrokenProcessPool as error:
            raise RuntimeError(
                "A `kdistill compare` worker process died before finishing (killed, or "
                "out of memory). The strategies that finished are saved: rerun with "
                f"--resume {context.output_dir} (and fewer --workers if memory is short)."
            ) from error


def load_context(setup: WorkerSetup) -> Context:
    """Rebuilds, in a worker process, the `Context` the parent ran with."""
    split = data.load(
        setup.dataset, setup.data_path, seed=setup.context["seed"], max_train=setup.max_train
    )
    teacher = saving.load_model(setup.teacher_path, unsafe=setup.unsafe_load)
    with np.load(setup.teacher_outputs_path) as cached:
        teacher_train, teacher_test = cached["train"], cached["test"]
    return Context(
        split=split,
        teacher=teacher,
        teacher_train=teacher_train,
        teacher_test=teacher_test,
        architectures=architectures(
            setup.student_path, setup.student_widths, split, setup.unsafe_load
        ),
        **setup.context,
    )


def _start_worker(setup: WorkerSetup, threads: int) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    _STATE["context"] = load_context(setup)


def _run_job_in_worker(job: list) -> list:
    return list(run_job(_STATE["context"], job))
