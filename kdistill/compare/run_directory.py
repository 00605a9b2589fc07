"""The run directory of `kdistill compare`: what it holds, and guarding it.

A run directory holds one run's results (results.json/.csv), its report
(report.md, pareto.png), the settings that define its records
(settings.json), the trained teacher and student models, and the teacher's
cached outputs. Its records are only comparable with each other when they
were made with the same settings, so a new run never writes over an earlier
one unless told to (`--overwrite` deletes it first), and `--resume` first
checks that the stored settings equal the new ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np

from kdistill import atomic, backend
from kdistill.compare import report

SETTINGS_FILE = "settings.json"
"""The file in a run directory that holds the settings defining the run."""

_RUN_FILES = (
    "results.json",
    "results.csv",
    "report.md",
    "pareto.png",
    SETTINGS_FILE,
    "teacher.keras",
    "student.keras",
    ".teacher_outputs.npz",
)


def is_run_directory(path: str) -> bool:
    """Whether `path` holds a `kdistill compare` run (results.json or settings.json)."""
    return any(os.path.exists(os.path.join(path, f)) for f in ("results.json", SETTINGS_FILE))


def check_run_directory(out, resume, overwrite) -> None:
    """Refuses to write a new run over an earlier one, unless told to."""
    if resume or overwrite or not is_run_directory(out):
        return
    raise ValueError(
        f"The output directory {out!r} holds an earlier run (results.json). Pass "
        f"--resume {out} to continue it, or --overwrite to replace it (its results and "
        "models are deleted), or choose another --output_dir."
    )


def clear_run(out, say) -> None:
    """Deletes an earlier run's files from `out` (for `overwrite`)."""
    if not is_run_directory(out):
        return
    for name in _RUN_FILES:
        path = os.path.join(out, name)
        if os.path.isfile(path):
            os.remove(path)
    shutil.rmtree(os.path.join(out, "models"), ignore_errors=True)
    say(f"Replacing the earlier run in {out} (--overwrite).")


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_arrays(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _model_fingerprint(model, trained_weights: bool) -> str:
    """A path's file hash, or a Python model's weights (teacher) or architecture (student)."""
    if isinstance(model, str):
        if not os.path.isfile(model):
            return f"{model} (not a file)"  # loading it names the problem
        return f"file sha256:{_sha256_file(model)}"
    if trained_weights:
        return f"Keras model, weights sha256:{_sha256_arrays(model.get_weights())}"
    return (
        f"Keras model, architecture sha256:{hashlib.sha256(model.to_json().encode()).hexdigest()}"
    )


def run_settings(
    split,
    data_path,
    teacher,
    teacher_epochs,
    student,
    student_widths,
    epochs,
    seed,
    repeats,
    batch_size,
    learning_rate,
) -> dict:
    """The settings that define a run's records, as stored in settings.json.

    A resumed run must have equal settings, so its records compare with the
    earlier ones: the data (by a sha256 of the loaded arrays, so `max_train`,
    the split's seed and the file's content all count), the teacher (a file's
    sha256, a given model's weights, or the built-in teacher and its epochs),
    the students (widths, or a file's sha256), epochs, seed, repeats, batch
    size, learning rate, and the Keras in use. Settings that only change the
    recommendation (the budget) or how the run is carried out (`workers`,
    `latency_samples`, `verbose`) are not stored and may change; strategies
    are stored apart, and a resumed run may add new ones.

    Returns:
        A dict of JSON values, by setting name.
    """
    arrays = (split.x_train, split.y_train, split.x_val, split.y_val, split.x_test, split.y_test)
    return {
        "data": f"{split.name}, sha256:{_sha256_arrays(arrays)}",
        "teacher": (
            f"built-in, {teacher_epochs} epochs"
            if teacher is None
            else _model_fingerprint(teacher, trained_weights=True)
        ),
        "students": (
            f"built-in, widths {list(student_widths)}"
            if student is None
            else _model_fingerprint(student, trained_weights=False)
        ),
        "epochs": epochs,
        "seed": seed,
        "repeats": repeats,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "keras": backend.KERAS_NAME,
    }


def store_settings(out, defining, names, resume) -> None:
    """Writes settings.json; on resume, first refuses settings that differ from it."""
    path = os.path.join(out, SETTINGS_FILE)
    stored_names = []
    if resume and os.path.exists(path):
        try:
            with open(path) as f:
                stored = json.load(f)
            before, stored_names = stored["defining"], list(stored["strategies"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path!r} is not a kdistill settings file ({error}), so --resume cannot "
                "check that the run's settings match. Restore it, or start a new --output_dir."
            ) from error
        differences = [
            f"{key}: {before.get(key)!r} in the run, {value!r} now"
            for key, value in defining.items()
            if before.get(key) != value
        ]
        if differences:
            raise ValueError(
                f"Cannot resume {out!r} with other settings than it was run with ("
                + "; ".join(differences)
                + "). Its records would not compare with new ones: resume with the run's "
                "settings (strategies may be added), or start a new --output_dir."
            )
    elif resume and report.load_results(out):
        raise ValueError(
            f"{out!r} holds results but no {SETTINGS_FILE}, so --resume cannot check that "
            "the settings match. Start a new --output_dir (or --overwrite it)."
        )
    names = stored_names + [n for n in names if n not in stored_names]
    atomic.write_text(
        path, json.dumps({"defining": defining, "strategies": names}, indent=2) + "\n"
    )
