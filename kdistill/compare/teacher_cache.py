"""A cache of built-in teachers, so a second run on the same data reuses the first's.

Training the built-in teacher is the longest single step of `kdistill compare`
on a real dataset (minutes on MNIST). A teacher depends only on the data, its
architecture, its epochs and the seed, so the cache keys it by those: the
sha256 of the training and validation arrays, the architecture's JSON, the
training recipe, the epochs, the seed and the Keras in use. Any change gives a
new key, and so a new teacher. Each entry is a `.keras` file and a `.json`
file with how it was trained (time, epochs run, validation accuracy).

Example:
    >>> key = teacher_key(split, teacher_model, epochs=15, seed=0, recipe="cosine")
    >>> entry = lookup("~/.cache/kdistill/teachers", key)  # None on a first run
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from kdistill import atomic, backend

CACHE_ENV = "KDISTILL_CACHE_DIR"
"""Environment variable naming the cache folder (else ~/.cache/kdistill)."""


def default_directory() -> str:
    """The teachers' folder: $KDISTILL_CACHE_DIR/teachers, else ~/.cache/kdistill/teachers."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kdistill"
    )
    return os.path.join(root, "teachers")


def teacher_key(split, architecture, epochs: int, seed: int, recipe: str) -> str:
    """A hex key for one built-in teacher: equal exactly when it would train the same.

    Args:
        split: The data (`kdistill.data.Split`); its training and validation
            arrays are hashed.
        architecture: The untrained teacher model (its JSON is hashed).
        epochs: Its training epochs.
        seed: Its seed.
        recipe: Anything else that changes training (e.g. the schedule).

    Returns:
        A 64-character sha256 hex digest.
    """
    digest = hashlib.sha256()
    for array in (split.x_train, split.y_train, split.x_val, split.y_val):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    described = {
        "architecture": architecture.to_json(),
        "epochs": int(epochs),
        "seed": int(seed),
        "recipe": recipe,
        "keras": backend.KERAS_NAME,
    }
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()


def paths(directory: str, key: str) -> tuple[str, str]:
    """The entry's (model, metadata) paths."""
    stem = os.path.join(os.path.expanduser(directory), f"teacher-{key[:24]}")
    return stem + ".keras", stem + ".json"


def lookup(directory: str, key: str) -> dict | None:
    """The cached entry's metadata (with `path`), or None when there is none.

    An entry whose metadata names another key (a prefix clash) or cannot be
    read counts as absent.
    """
    model_path, meta_path = paths(directory, key)
    if not (os.path.isfile(model_path) and os.path.isfile(meta_path)):
        return None
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None
    return {**meta, "path": model_path}


def store(directory: str, key: str, model, meta: dict) -> str:
    """Saves `model` and `meta` under `key`, each file atomically; returns the model path."""
    model_path, meta_path = paths(directory, key)
    atomic.ensure_directory(os.path.dirname(model_path))
    tmp = model_path[: -len(".keras")] + f".{os.getpid()}.tmp.keras"
    model.save(tmp)
    os.replace(tmp, model_path)
    atomic.write_text(meta_path, json.dumps({**meta, "key": key}, indent=2) + "\n")
    return model_path
