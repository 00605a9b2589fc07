"""Loading `.keras` files safely, with errors that say what to do."""

from __future__ import annotations

import os
import zipfile

from kdistill.backend import keras


def load_model(path: str, unsafe: bool = False, compile: bool = False):
    """Loads a `.keras` model with Keras's safe mode on by default.

    Safe mode refuses files whose layers would run arbitrary code when
    loaded (serialized lambdas). Pass `unsafe=True` only for files you trust:
    it executes the code stored in the file.

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
    try:
        return keras.models.load_model(path, safe_mode=not unsafe, compile=compile)
    except ValueError as error:
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
