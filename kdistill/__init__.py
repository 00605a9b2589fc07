"""kdistill: knowledge distillation and model compression for Keras.

Importing `kdistill` alone does not load TensorFlow: the public names below
load it when first used (`from kdistill import Distiller` does). So the
`kdistill` command can set TensorFlow's log level before TensorFlow starts,
and `kdistill --help` prints the help at once. Where TensorFlow is loaded
already (`import keras` first, the usual order), `import kdistill` registers
its classes with Keras at once, so `keras.models.load_model` finds a saved
`Distiller`; otherwise any kdistill name used first does.
"""

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_PUBLIC = {
    "Distiller": "kdistill.distiller",
    "backend": "kdistill.backend",
    "cache_teacher_outputs": "kdistill.offline",
    "losses": "kdistill.losses",
    "offline_targets": "kdistill.offline",
}

__all__ = [
    "Distiller",
    "backend",
    "cache_teacher_outputs",
    "losses",
    "offline_targets",
]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'kdistill' has no attribute {name!r}")
    module = importlib.import_module(_PUBLIC[name])
    value = module if module.__name__ == f"kdistill.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


def _register_if_tensorflow_is_loaded() -> None:
    # Where TensorFlow is loaded already (the user imported keras or tensorflow
    # first, the usual order), loading kdistill's classes costs no start-up
    # output and registers them with Keras, so `keras.models.load_model` finds
    # a saved Distiller after a plain `import kdistill`.
    import sys

    if "tensorflow" in sys.modules:
        for name in ("Distiller", "losses"):
            __getattr__(name)


_register_if_tensorflow_is_loaded()
