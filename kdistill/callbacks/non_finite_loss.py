"""Stops `fit` at the first non-finite loss, with an error saying why."""

from __future__ import annotations

import math

from kdistill.backend import keras


class NonFiniteLossError(ValueError):
    """The training loss became NaN or inf: the weights are no longer usable.

    A `ValueError`, so command-line tools print it as one line, and
    `kdistill.compare` records the strategy as failed.
    """


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` at the first step whose loss is NaN or inf.

    Unlike `keras.callbacks.TerminateOnNaN`, which stops quietly and returns
    a history as if training had ended, this raises, naming the epoch and
    step, so no caller saves, exports or recommends the broken model.
    `Distiller.fit` adds it to every run.

    It reads the loss Keras already brings to the host for the callbacks of
    each step (the running mean of the epoch, non-finite from the first bad
    step on), so it adds no op to the compiled step. With
    `steps_per_execution` > 1 the step named is the last of its execution.

    Example:
        >>> distiller.fit(x, y, callbacks=[StopOnNonFiniteLoss()])
    """

    def __init__(self):
        super().__init__()
        # tf_keras: take the logs as they are (a scalar tensor is read below)
        # instead of converting every log of every step for this callback.
        self._supports_tf_logs = True
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(loss)
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"The training loss became {value} at epoch {self._epoch + 1}, step "
                f"{batch + 1}, so training stopped: the weights are no longer usable "
                "and nothing should be saved from this run. Likely causes: a learning "
                "rate too high (try 10x lower), NaN or inf in the data, the sample "
                "weights or the cached teacher outputs, or a teacher whose outputs are "
                "not finite."
            )
