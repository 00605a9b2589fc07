"""Loading `.keras` files safely, with errors that say what to do."""

from __future__ import annotations

import contextlib
import json
import os
import zipfile

from kdistill import backend
from kdistill.backend import keras
from kdistill.compression import tfmot_backend


def load_model(path: str, unsafe: bool = False, compile: bool = False):
    """Loads a `.keras` model with Keras's safe mode on by default.

    Safe mode refuses files whose layers would run arbitrary code when
    loaded (serialized lambdas). Pass `unsafe=True` only for files you trust:
    it executes the code stored in the file. A model saved while wrapped by
    tensorflow-model-optimization for pruning or clustering loads under
    tf_keras without tfmot's scopes: they are opened here. tfmot cannot
    rebuild a quantization-aware model from a `.keras` file; the error says
    what to save instead.

    Args:
        path: Path to a `.keras` file.
        unsafe: Allow code stored in the file to run (Keras safe_mode=False).
        compile: Restore the compile state too.

    Returns:
        The model.

    Example:
        >>> student = load_model("student.keras")
    """
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No model file at {path!r}. Pass the path of a .keras file saved "
            "with model.save('model.keras')."
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a valid .keras file (a .keras file is a zip "
            "archive; this one is corrupt, truncated, or another format). Save "
            "the model again with model.save('model.keras')."
        )
    scope = contextlib.nullcontext()
    wrappers = tfmot_wrappers_in(path)
    if wrappers and not backend.LEGACY_KERAS:
        raise ValueError(
            f"{path!r} holds tensorflow-model-optimization wrappers ({', '.join(wrappers)}), "
            "which only tf_keras can load. Load it in a process started with "
            "TF_USE_LEGACY_KERAS=1, or save kdistill.compression.strip(model) instead "
            "to get a plain Keras file."
        )
    if wrappers:
        scope = tfmot_backend.load_scope()
    try:
        with scope:
            return keras.models.load_model(path, safe_mode=not unsafe, compile=compile)
    except ValueError as error:
        if any(name.startswith("QuantizeWrapper") for name in wrappers):
            raise ValueError(
                f"{path!r} holds a quantization-aware (tfmot QAT) model, which tfmot "
                f"cannot rebuild from a .keras file ({error}). Save its weights instead "
                "(model.save_weights('qat.weights.h5')) and load them into a model "
                "rebuilt with kdistill.compression.quantize_aware, or export it to "
                "TFLite with kdistill.export."
            ) from error
        if "safe_mode" in str(error) or "lambda" in str(error).lower():
            raise ValueError(
                f"{path!r} contains code (a serialized lambda) that would run when "
                "loaded, and safe loading refuses it. Load it only if you trust its "
                "source: pass unsafe=True (command line: --unsafe_load), which "
                "executes that code."
            ) from error
        raise
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise ValueError(
            f"{path!r} could not be read as a .keras file ({error}). It is corrupt "
            "or truncated: save the model again."
        ) from error


def tfmot_wrappers_in(path: str) -> list:
    """The tfmot wrapper classes named in a `.keras` file's model config.

    Args:
        path: Path to a `.keras` file (a zip archive holding config.json).

    Returns:
        The sorted class names; empty when the file has none or no readable
        config (loading then reports what is wrong).

    Example:
        >>> tfmot_wrappers_in("pruned.keras")
        ['PruneLowMagnitude']
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return []
    found = set()
    pending = [config]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if item.get("class_name") in tfmot_backend.WRAPPER_CLASS_NAMES:
                found.add(item["class_name"])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return sorted(found)
