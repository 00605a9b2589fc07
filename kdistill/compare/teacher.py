"""The teacher of `kdistill compare`: given, saved in the run, cached, or trained here.

The built-in teacher trains with a line per epoch (time left included) and
stops early once its validation accuracy stops rising; `kdistill.compare.
teacher_cache` keeps it for later runs on the same data.
"""

from __future__ import annotations

import os
import time

from kdistill import models, saving, training, validation
from kdistill.backend import keras
from kdistill.callbacks import EpochProgress, ValidationAccuracyStopping
from kdistill.compare import teacher_cache


def obtain(teacher, split, out, epochs, seed, unsafe_load, say, cache) -> tuple:
    """The given teacher, the one saved in `out`, a cached one, or a built-in one trained here.

    Args:
        cache: (folder of cached teachers or None, whether to retrain anyway).

    Returns:
        (the teacher model, how it was obtained: a dict for the report).
    """
    if isinstance(teacher, str):
        return saving.load_model(teacher, unsafe=unsafe_load), {"source": f"file {teacher}"}
    if teacher is not None:
        validation.check_model(teacher, "teacher")
        return teacher, {"source": "given model"}
    saved = os.path.join(out, "teacher.keras")
    if os.path.exists(saved):
        say(f"Using the teacher saved in {saved}.")
        return saving.load_model(saved), {"source": f"saved in the run, {saved}"}
    cache_dir, retrain = cache
    keras.utils.set_random_seed(seed)  # its initial weights too, whatever ran before
    architecture = models.teacher_for(split.input_shape, split.num_classes)
    settings = training.teacher_settings(split, epochs, seed)
    key = teacher_cache.teacher_key(split, architecture, epochs, seed, settings.lr_schedule)
    entry = teacher_cache.lookup(cache_dir, key) if cache_dir else None
    if entry and not retrain:
        say(
            f"Reusing the built-in teacher an earlier run trained on the same data "
            f"({entry['path']}: {entry['epochs_run']} epochs in {entry['train_s']:.0f}s, "
            f"validation accuracy {entry['val_accuracy']:.4f}). Pass --retrain_teacher to "
            "train it again.",
            flush=True,
        )
        model = saving.load_model(entry["path"])
        save_model(model, saved)
        return model, {**{k: v for k, v in entry.items() if k != "key"}, "source": "cache"}
    # A small validation split moves in steps too coarse to stop on (digits: 0.7 points).
    patience = TEACHER_PATIENCE if len(split.y_val) >= MIN_VALIDATION_TO_STOP else None
    say(
        f"Training the built-in teacher ({epochs} epochs"
        + (", stopping early if its validation accuracy stops rising" if patience else "")
        + (f"; it is kept in {cache_dir} for later runs on the same data" if cache_dir else "")
        + ") ...",
        flush=True,
    )
    began = time.perf_counter()
    # fit_supervised validates on split.x_val: read its logs rather than predict again.
    stopping = ValidationAccuracyStopping(
        split.x_val, split.y_val, patience=patience, from_logs=True
    )
    model = training.fit_supervised(
        architecture,
        split,
        settings,
        callbacks=[stopping, EpochProgress("teacher", print_fn=lambda line: say(line, flush=True))],
    )
    summary = stopping.summary()
    info = {
        "source": "trained",
        "train_s": round(time.perf_counter() - began, 1),
        "epochs": epochs,
        **{k: summary[k] for k in ("epochs_run", "stopped_early", "best_epoch", "val_accuracy")},
    }
    save_model(model, saved)
    if cache_dir:
        info["path"] = teacher_cache.store(cache_dir, key, model, info)
    return model, info


TEACHER_PATIENCE = 3
"""The built-in teacher stops after this many epochs without a validation gain..."""

MIN_VALIDATION_TO_STOP = 1000
"""...when the validation split holds at least this many samples."""


def describe(info: dict) -> str:
    """How the teacher was obtained, in words, for report.md."""
    if info.get("source") not in ("trained", "cache"):
        return info.get("source", "")
    how = (
        f"{info['epochs_run']} of {info['epochs']} epochs in {info['train_s']:.0f}s"
        + (f", stopped early (best epoch {info['best_epoch']})" if info["stopped_early"] else "")
        + f", validation accuracy {info['val_accuracy']:.4f}"
    )
    if info["source"] == "cache":
        return f"loaded from the cache ({info['path']}; trained earlier: {how})"
    return f"trained here: {how}"


def save_model(model, path: str) -> str:
    """Saves `model` to `path` atomically (a temporary file, then a rename); returns `path`."""
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)
    return path
