"""Callbacks that schedule the Distiller's temperatures and alpha."""

from __future__ import annotations

from kdistill import validation
from kdistill.backend import keras
from kdistill.callbacks._distiller_check import require_distiller


class _VariableScheduler(keras.callbacks.Callback):
    """Assigns `schedule(count)` to some of the Distiller's variables.

    Subclasses say which variables (`_variables`) and under which log key the
    value is reported (`log_key`).
    """

    log_key = ""

    def __init__(self, schedule, per: str = "epoch", verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                "Invalid value for argument `schedule`. Expected a function of "
                "the epoch (or step) index, such as kdistill.schedules.linear("
                f"...). Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.per = validation.check_choice(per, "per", ("epoch", "step"))
        self.verbose = verbose
        self._value = None

    def _variables(self, distiller) -> list:
        raise NotImplementedError

    def _check(self, value) -> float:
        return validation.check_number(value, f"{self.log_key} (the schedule's value)")

    def _apply(self, count):
        distiller = require_distiller(self.model, self)
        value = self._check(self.schedule(count))
        for variable in self._variables(distiller):
            variable.assign(value)
        self._value = value
        return value

    def on_epoch_begin(self, epoch, logs=None):
        if self.per == "epoch":
            value = self._apply(epoch)
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {type(self).__name__} sets {self.log_key} to {value}.")

    def on_train_batch_begin(self, batch, logs=None):
        if self.per == "step":
            # The optimizer's step count, not a count of this fit's batches:
            # it carries over a second `fit`, `initial_epoch` and
            # BackupAndRestore, and counts every step of an execution.
            self._apply(int(self.model.optimizer.iterations.numpy()))

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None and self._value is not None:
            logs[self.log_key] = self._value

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._value is not None:
            logs[self.log_key] = self._value


class TemperatureScheduler(_VariableScheduler):
    """Sets every distillation temperature from a schedule.

    Works like `keras.callbacks.LearningRateScheduler`: `schedule` takes the
    0-based epoch index (or, with ``per="step"``, the optimizer's step count
    `optimizer.iterations`, which a resumed or repeated `fit` continues, as
    Keras's learning-rate schedules do) and its value applies from the start
    of that epoch (step). With `steps_per_execution` > 1 a per-step value
    changes between executions only. The value appears in the logs as
    `temperature`, for callbacks listed after this one (CSVLogger,
    TensorBoard).

    Args:
        schedule: A function of the index, e.g. `kdistill.schedules.linear`.
        per: "epoch" (default) or "step".
        verbose: Print each new value when > 0.

    Example:
        >>> distiller.fit(x, y, epochs=10, callbacks=[
        ...     TemperatureScheduler(schedules.linear(8.0, 2.0, steps=9))])
    """

    log_key = "temperature"

    def _variables(self, distiller):
        variables = distiller.temperatures
        if not variables:
            raise ValueError(
                "TemperatureScheduler found no temperature to set: none of the "
                "Distiller's losses has one. Use a loss such as SoftTargetKD or "
                "DecoupledKD, or remove the callback."
            )
        return variables

    def _check(self, value):
        return validation.check_temperature(value)


class AlphaScheduler(_VariableScheduler):
    """Sets the Distiller's `alpha` (the hard-label weight) from a schedule.

    Same semantics as `TemperatureScheduler`; values must lie in [0, 1] and
    appear in the logs as `alpha`.

    Example:
        >>> distiller.fit(x, y, epochs=10, callbacks=[
        ...     AlphaScheduler(lambda epoch: 0.1 if epoch < 5 else 0.5)])
    """

    log_key = "alpha"

    def _variables(self, distiller):
        return [distiller.alpha]

    def _check(self, value):
        return validation.check_unit_interval(value, "alpha")
