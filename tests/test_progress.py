"""EpochProgress: one line per epoch, with the time left."""

import re

import numpy as np
import pytest
from conftest import tiny_mlp

from kdistill.backend import keras
from kdistill.callbacks import EpochProgress
from kdistill.callbacks.progress import format_duration

LINE = re.compile(
    r"^\[tiny\] epoch (\d+)/4: loss [0-9.]+, accuracy [0-9.]+; (\S+) elapsed, ~(\S+) left$"
)


def fit(progress, epochs=4):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = np.argmax(x[:, :3], axis=1)
    model = tiny_mlp()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, verbose=0, callbacks=[progress])


def test_prints_one_line_per_epoch_with_the_time_left():
    lines = []
    fit(EpochProgress("tiny", print_fn=lines.append))
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [int(m.group(1)) for m in matches] == [1, 2, 3, 4]
    assert matches[-1].group(3) == "0s"  # nothing left after the last epoch


def test_a_minimum_interval_keeps_the_first_and_last_epoch():
    lines = []
    fit(EpochProgress("tiny", print_fn=lines.append, min_interval_s=3600))
    assert [int(LINE.match(line).group(1)) for line in lines] == [1, 4]


def test_durations_read_as_minutes_and_hours():
    assert [format_duration(s) for s in (4.6, 125, 3720)] == ["5s", "2m05s", "1h02m"]


def test_negative_interval_is_rejected():
    with pytest.raises(ValueError, match="argument `min_interval_s`. Expected a number >= 0"):
        EpochProgress("tiny", min_interval_s=-1)
