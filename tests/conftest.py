"""Shared fixtures: tiny models and scikit-learn's digits, fixed seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kdistill import Distiller, data, models, training  # noqa: E402
from kdistill.backend import keras  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(autouse=True)
def _teacher_cache(tmp_path, monkeypatch):
    """Each test's `kdistill compare` commands cache teachers in its own folder, never ~/.cache."""
    monkeypatch.setenv("KDISTILL_CACHE_DIR", str(tmp_path / "kdistill_cache"))


@pytest.fixture(scope="session")
def digits():
    """The digits split used by training tests (offline, ~1.8k samples)."""
    return data.load("digits", seed=0)


@pytest.fixture(scope="session")
def digits_teacher(digits):
    """A teacher trained once per session on digits (~98% test accuracy)."""
    keras.utils.set_random_seed(0)
    teacher = models.mlp(digits.input_shape, 10, (512, 512), dropout=0.3, name="teacher")
    return training.fit_supervised(teacher, digits, training.FitSettings(epochs=40, seed=0))


def tiny_mlp(units=8, classes=3, inputs=4, name="mlp", softmax=False, batch_norm=False):
    """A functional MLP with named layers: f"{name}_hidden", f"{name}_out"."""
    x_in = keras.Input((inputs,))
    h = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(x_in)
    if batch_norm:
        h = keras.layers.BatchNormalization(momentum=0.5, name=f"{name}_bn")(h)
    out = keras.layers.Dense(
        classes, activation="softmax" if softmax else None, name=f"{name}_out"
    )(h)
    return keras.Model(x_in, out, name=name)


def two_heads(units=8, inputs=4, name="mlp", as_dict=False):
    """A model with a 3-class head f"{name}_cls" and a 2-value head f"{name}_box"
    (as a list, or a dict keyed "cls" and "box")."""
    x_in = keras.Input((inputs,))
    h = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(x_in)
    cls = keras.layers.Dense(3, name=f"{name}_cls")(h)
    box = keras.layers.Dense(2, name=f"{name}_box")(h)
    return keras.Model(x_in, {"cls": cls, "box": box} if as_dict else [cls, box], name=name)


def two_head_data(n=256, inputs=4, seed=0):
    """Inputs, class labels (argmax of the first 3 inputs) and box targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, inputs)).astype("float32")
    return x, np.argmax(x[:, :3], axis=1).astype("int64"), 0.5 * x[:, 2:4]


def toy_data(n=64, inputs=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, inputs)).astype("float32")
    y = rng.integers(0, classes, size=(n,)).astype("int64")
    return x, y


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def frozen_sgd():
    # lr=0 keeps the weights fixed, so logged values can be checked by hand.
    return keras.optimizers.SGD(learning_rate=0.0)


def make_distiller(teacher=None, student=None, **kwargs):
    """A Distiller from a 16-unit teacher to a 4-unit student (tiny_mlp), unless given."""
    teacher = teacher or tiny_mlp(name="teacher", units=16)
    student = student or tiny_mlp(name="student", units=4)
    return Distiller(teacher=teacher, student=student, **kwargs)


def two_head_pair(as_dict=False):
    """An untrained teacher (16 units) and student (8) with "cls" and "box" heads."""
    return (
        two_heads(units=16, name="teacher", as_dict=as_dict),
        two_heads(name="student", as_dict=as_dict),
    )
