"""The one place that chooses which Keras kdistill runs on.

kdistill runs on Keras 3 with the TensorFlow backend by default, and on
tf_keras (Keras 2) when TensorFlow's own switch ``TF_USE_LEGACY_KERAS`` is set
to a true value before TensorFlow is imported. Every other kdistill module
imports Keras from here::

    from kdistill.backend import keras, tf

so that one process never mixes the two. Nothing here imports
tensorflow_model_optimization: importing it sets ``TF_USE_LEGACY_KERAS=1`` for
the whole process, so kdistill imports it only inside the functions that need
it.
"""

from __future__ import annotations

import os

import tensorflow as tf

_TRUE_VALUES = ("1", "true", "True", "TRUE", "yes")


def _legacy_requested() -> bool:
    # TensorFlow reads the same variable with the same spelling of "true".
    return os.environ.get("TF_USE_LEGACY_KERAS", "") in _TRUE_VALUES


LEGACY_KERAS: bool = _legacy_requested()
"""True when kdistill runs on tf_keras (Keras 2), False on Keras 3."""

if LEGACY_KERAS:
    import tf_keras as keras
else:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ImportError(
            "kdistill needs Keras's TensorFlow backend, but Keras is set to "
            f"the {keras.backend.backend()!r} backend. Set the environment "
            "variable KERAS_BACKEND=tensorflow before importing kdistill."
        )

KERAS_NAME: str = "tf_keras" if LEGACY_KERAS else "keras"
"""Name of the Keras package in use, for messages and reports."""


def scalar_variable(value: float, name: str) -> tf.Variable:
    """Returns a non-trainable float32 scalar variable.

    Values a callback may change during training (alpha, temperatures) live in
    variables, not Python floats: a traced `train_step` would freeze a float,
    while it reads a variable's current value at every step.

    Args:
        value: Initial value.
        name: Variable name.

    Returns:
        A `tf.Variable` of dtype float32 with `trainable=False`.
    """
    return tf.Variable(float(value), trainable=False, dtype=tf.float32, name=name)


def minimize(optimizer, tape: tf.GradientTape, loss, variables) -> None:
    """Applies one optimizer step for `loss`, with loss scaling if needed.

    Keras 3 and tf_keras differ in how a mixed-precision loss-scale optimizer
    is driven; this hides the difference.

    Args:
        optimizer: The compiled optimizer.
        tape: The tape that recorded `loss`. Keras 3 needs `loss` to have been
            scaled with `optimizer.scale_loss` inside the tape (see
            `scale_loss`).
        loss: The (scaled, for Keras 3) scalar loss.
        variables: Variables to update.
    """
    if LEGACY_KERAS:
        optimizer.minimize(loss, variables, tape=tape)
        return
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))


def scale_loss(optimizer, loss):
    """Scales `loss` for a loss-scale optimizer under Keras 3; else returns it."""
    if LEGACY_KERAS or optimizer is None:
        return loss
    return optimizer.scale_loss(loss)


def multi_worker(strategy=None) -> bool:
    """True when `strategy` (default: the current one) spans several workers.

    That is a `tf.distribute.MultiWorkerMirroredStrategy` whose cluster has
    more than one worker, the case where Keras 3's `fit` needs the
    work-arounds below.
    """
    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_multi_worker_mode()) if callable(in_multi_worker_mode) else True


def step_logs(logs: dict) -> dict:
    """Makes a train/test step's logs reducible across workers.

    Keras 3 (up to at least 3.15) reduces each log of a step under a
    multi-worker strategy with ``strategy.reduce("MEAN", value, axis=0)``,
    which fails on the scalars every metric returns
    (keras-team/keras#20585). Shaped ``[1]``, the same reduction gives the
    mean over workers. Elsewhere (one worker, tf_keras) the logs are returned
    unchanged.

    Args:
        logs: The step's `{name: scalar tensor}`.

    Returns:
        `logs`, with each scalar reshaped to ``[1]`` under Keras 3 and a
        multi-worker strategy.
    """
    if LEGACY_KERAS or not multi_worker():
        return logs
    return {
        name: tf.reshape(value, [1]) if tf.is_tensor(value) and value.shape.rank == 0 else value
        for name, value in logs.items()
    }


def first_local_batch(batch):
    """The first local replica's part of a distributed batch (other values as given)."""
    strategy = tf.distribute.get_strategy()
    return tf.nest.map_structure(
        lambda value: (
            strategy.experimental_local_results(value)[0]
            if isinstance(value, tf.distribute.DistributedValues)
            else value
        ),
        batch,
    )


def register_serializable(cls):
    """Registers `cls` with the Keras in use under the package "kdistill"."""
    return keras.saving.register_keras_serializable(package="kdistill")(cls)
