"""Runs `kdistill compare`'s strategies in worker processes (``--workers N``).

Strategies that train the same student (for example "kd" and "kd+int8", which
differ only in how the trained student is exported) form one job, so each
student is trained once, exactly as in a sequential run. The parent process
trains the teacher and writes it, its cached outputs and the student
architecture to files; each worker process (started with "spawn", which is
safe with TensorFlow's threads) loads them once, then runs jobs. Training
seeds the random generators per student, so results do not depend on which
worker runs a job or in what order. The parent is the only writer of
results.json.

Example:
    >>> from kdistill.strategies import parse
    >>> group_units([("w16", parse("kd")), ("w16", parse("labels")), ("w16", parse("kd+int8"))])
    [[0, 2], [1]]
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from collections.abc import Callable

from kdistill import validation

_STATE: dict = {}  # the worker process's data, teacher and settings


def check_workers(workers) -> int:
    """Returns `workers` if it is an integer >= 1, else raises a clear error."""
    return validation.check_integer(workers, "workers", minimum=1)


def group_units(units: list) -> list[list[int]]:
    """Groups the (student label, Strategy) units that share one trained student.

    Args:
        units: `(label, kdistill.strategies.Strategy)` pairs in run order.

    Returns:
        Lists of indices into `units`, in order of first appearance; the units
        of one list differ only in export (equal label and `training_key`).
    """
    groups: dict = {}
    for index, (label, strategy) in enumerate(units):
        groups.setdefault((label, strategy.training_key), []).append(index)
    return list(groups.values())


def run_jobs(
    setup: dict, jobs: list[list], workers: int, on_record: Callable[[int, dict], None]
) -> None:
    """Runs `jobs` in `workers` processes and reports each unit's record.

    Args:
        setup: What a worker needs to rebuild the run (see `compare.run`):
            paths of the teacher, its outputs and the student architecture,
            and the data and training settings. Plain values only.
        jobs: Lists of `(unit index, label, strategy name)`.
        workers: Number of worker processes.
        on_record: Called in the parent as `on_record(unit_index, record)`
            for every unit, as its job finishes.

    Raises:
        RuntimeError: A worker process died (killed, out of memory). Finished
            strategies are already in results.json: rerun with `--resume`.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(setup, threads)
    ) as pool:
        futures = [pool.submit(_run_job, job) for job in jobs]
        try:
            for future in concurrent.futures.as_completed(futures):
                for index, record in future.result():
                    on_record(index, record)
        except concurrent.futures.process.BrokenProcessPool as error:
            raise RuntimeError(
                "A `kdistill compare` worker process died before finishing (killed, or "
                "out of memory). The strategies that finished are saved: rerun with "
                f"--resume {setup['output_dir']} (and fewer --workers if memory is short)."
            ) from error


def _start_worker(setup: dict, threads: int) -> None:
    from kdistill.backend import tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from kdistill import compare

    _STATE.update(setup=setup, context=compare.load_worker_context(setup))


def _run_job(job: list) -> list:
    from kdistill import compare, strategies

    setup, (context, architectures) = _STATE["setup"], _STATE["context"]
    trained: dict = {}
    records = []
    for index, label, name in job:
        started = time.perf_counter()
        record = compare.run_unit(
            context,
            strategies.parse(name),
            label,
            architectures[label],
            setup["seed"],
            setup["repeats"],
            trained,
            setup["models_dir"],
        )
        record["elapsed_s"] = round(time.perf_counter() - started, 2)
        records.append((index, record))
    return records
