"""A one-line-per-epoch progress report with an estimate of the time left."""

from __future__ import annotations

import time
from collections.abc import Callable

from kdistill import validation
from kdistill.backend import keras

SHOWN_LOGS = ("loss", "accuracy", "val_loss", "val_accuracy")


class EpochProgress(keras.callbacks.Callback):
    """Prints one line per epoch: metrics, time elapsed and time left.

    Keras's own progress bar redraws one terminal line per step, which a log
    file or a pipe turns into thousands of lines; `verbose=0` prints nothing
    for the whole of a long fit. This callback prints a line at the end of
    an epoch, with the time so far and an estimate of the time left (the mean
    epoch time so far times the epochs left), e.g.::

        [teacher] epoch 3/40: loss 0.4123, val_accuracy 0.9312; 12s elapsed, ~2m28s left

    Args:
        label: What is training, shown at the start of each line.
        print_fn: Where lines go (default: `print`, flushed).
        min_interval_s: Seconds to wait after a line before the next one;
            the first and the last epoch are always shown. 0 (default)
            shows every epoch; more keeps many short fits quiet.

    Example:
        >>> model.fit(x, y, epochs=40, verbose=0, callbacks=[EpochProgress("teacher")])
    """

    def __init__(
        self,
        label: str,
        print_fn: Callable[[str], None] | None = None,
        min_interval_s: float = 0.0,
    ):
        super().__init__()
        validation.check_non_negative(min_interval_s, "min_interval_s")
        self.label = label
        self.print_fn = print_fn or (lambda line: print(line, flush=True))
        self.min_interval_s = float(min_interval_s)
        self._started = self._shown = self._first_epoch = None

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()
        self._shown = None
        self._first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:  # fit(initial_epoch=...) starts later
            self._first_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        epochs = int(self.params.get("epochs") or epoch + 1)
        now = time.perf_counter()
        done = epoch + 1 - self._first_epoch
        last = epoch + 1 >= epochs
        if self._shown is not None and not last and now - self._shown < self.min_interval_s:
            return
        self._shown = now
        elapsed = now - self._started
        left = elapsed / done * (epochs - epoch - 1)
        shown = ", ".join(
            f"{key} {float(logs[key]):.4f}" for key in SHOWN_LOGS if key in (logs or {})
        )
        self.print_fn(
            f"[{self.label}] epoch {epoch + 1}/{epochs}"
            + (f": {shown}" if shown else "")
            + f"; {format_duration(elapsed)} elapsed, ~{format_duration(left)} left"
        )


def format_duration(seconds: float) -> str:
    """A short human duration: "45s", "2m05s", "1h02m".

    Example:
        >>> format_duration(125)
        '2m05s'
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
