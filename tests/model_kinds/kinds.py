"""The model kinds a Keras user brings: each builder returns a teacher, a
student and a few dozen samples (tiny widths, fixed seeds).

`KINDS` names them; `build(name)` returns a `Kind`; `trained(name)` fits a
Distiller once per test session (online, four epochs) for the features that
start from a trained student (reload, export, prune). A kind that does not
exist under the Keras in use is skipped with `unavailable(name)`'s reason.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from kdistill import Distiller, backend
from kdistill.backend import keras
from kdistill.losses import LogitMSE, SoftTargetKD

N = 32  # samples
CLASSES = 3


@dataclasses.dataclass
class Kind:
    """A teacher/student pair with data, and what its features need."""

    name: str
    teacher: object
    student: object
    x: object  # an array, a list or a dict of arrays
    y: np.ndarray
    hint: tuple | None  # (teacher layer, student layer), or None where refused
    hard_loss: object = None
    distillation_loss: object = None
    regression: bool = False
    hint_loss: str = "hint"  # "hint" or "attention"
    hint_distance: str = "mse"

    def distiller(self, teacher="same", **kwargs):
        kwargs.setdefault("distillation_loss", self.distillation_loss)
        return Distiller(self.teacher if teacher == "same" else teacher, self.student, **kwargs)

    def first(self, count):
        """The first `count` samples of x."""
        if isinstance(self.x, dict):
            return {k: v[:count] for k, v in self.x.items()}
        if isinstance(self.x, list):
            return [v[:count] for v in self.x]
        return self.x[:count]


def _rng(seed):
    keras.utils.set_random_seed(seed)
    return np.random.default_rng(seed)


def _vectors(seed=0, inputs=8):
    rng = _rng(seed)
    x = rng.normal(size=(N, inputs)).astype("float32")
    return x, np.argmax(x[:, :CLASSES], axis=1).astype("int64")


def _ce(from_logits=True):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def _mlp_layers(name, units):
    return [
        keras.layers.Dense(units, activation="relu", name=f"{name}_hidden"),
        keras.layers.Dense(CLASSES, name=f"{name}_out"),
    ]


def sequential(start):
    def build():
        x, y = _vectors()
        models = []
        for name, units in (("teacher", 16), ("student", 4)):
            first = [keras.Input((8,))] if start == "input" else []
            model = keras.Sequential(first + _mlp_layers(name, units), name=name)
            if start == "called":
                model(x[:1])
            models.append(model)
        hint = None if start == "bare" else ("teacher_hidden", "student_hidden")
        return Kind(f"sequential_{start}", *models, x, y, hint, _ce())

    return build


def _functional(name, units):
    x_in = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(x_in)
    return keras.Model(x_in, keras.layers.Dense(CLASSES)(hidden), name=name)


def functional():
    x, y = _vectors()
    models = [_functional("teacher", 16), _functional("student", 4)]
    return Kind("functional", *models, x, y, ("teacher_hidden", "student_hidden"), _ce())


def two_inputs(structure):
    def build():
        rng = _rng(0)
        a, b = (rng.normal(size=(N, 4)).astype("float32") for _ in range(2))
        y = np.argmax(a[:, :CLASSES] + b[:, :CLASSES], axis=1).astype("int64")
        models = []
        for name, units in (("teacher", 16), ("student", 4)):
            ins = {"a": keras.Input((4,), name="a"), "b": keras.Input((4,), name="b")}
            joined = keras.layers.Concatenate()([ins["a"], ins["b"]])
            hidden = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(joined)
            out = keras.layers.Dense(CLASSES)(hidden)
            inputs = ins if structure == "dict" else [ins["a"], ins["b"]]
            models.append(keras.Model(inputs, out, name=name))
        x = {"a": a, "b": b} if structure == "dict" else [a, b]
        return Kind(
            f"two_inputs_{structure}", *models, x, y, ("teacher_hidden", "student_hidden"), _ce()
        )

    return build


def nested():
    """A student whose hidden layer sits in a sub-model named "backbone"."""
    x, y = _vectors()
    teacher = _functional("teacher", 16)
    inner_in = keras.Input((8,))
    hidden = keras.layers.Dense(4, activation="relu", name="inner_hidden")(inner_in)
    backbone = keras.Model(inner_in, hidden, name="backbone")
    x_in = keras.Input((8,))
    student = keras.Model(x_in, keras.layers.Dense(CLASSES)(backbone(x_in)), name="student")
    return Kind(
        "nested", teacher, student, x, y, ("teacher_hidden", "backbone/inner_hidden"), _ce()
    )


@backend.register_serializable
class SubclassedMLP(keras.Model):
    """A subclassed MLP: no layer graph, so no feature losses."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(CLASSES)

    def call(self, inputs):
        return self.out(self.hidden(inputs))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def subclassed():
    x, y = _vectors()
    return Kind(
        "subclassed",
        SubclassedMLP(16, name="teacher"),
        SubclassedMLP(4, name="student"),
        x,
        y,
        None,
        _ce(),
    )


def text():
    """Integer ids padded with 0: an Embedding(mask_zero=True) + pooling
    teacher and an LSTM student."""
    rng = _rng(0)
    lengths = rng.integers(2, 7, size=N)
    ids = np.zeros((N, 6), "int32")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 20, size=length)
    y = (ids[:, 0] % CLASSES).astype("int64")
    t_in = keras.Input((6,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D(name="teacher_pool")(
        keras.layers.Embedding(20, 16, mask_zero=True)(t_in)
    )
    teacher = keras.Model(t_in, keras.layers.Dense(CLASSES)(pooled), name="teacher")
    s_in = keras.Input((6,), dtype="int32")
    state = keras.layers.LSTM(8, name="student_lstm")(
        keras.layers.Embedding(20, 8, mask_zero=True)(s_in)
    )
    student = keras.Model(s_in, keras.layers.Dense(CLASSES)(state), name="student")
    # Pooled embeddings are ~0.01 in size: compare directions, not values.
    return Kind(
        "text",
        teacher,
        student,
        ids,
        y,
        ("teacher_pool", "student_lstm"),
        _ce(),
        hint_distance="cosine",
    )


def regression():
    x, _ = _vectors()
    models = []
    for name, units in (("teacher", 16), ("student", 4)):
        x_in = keras.Input((8,))
        hidden = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(x_in)
        models.append(keras.Model(x_in, keras.layers.Dense(1)(hidden), name=name))
    y = (x[:, :1] - 0.5 * x[:, 1:2]).astype("float32")
    return Kind(
        "regression",
        *models,
        x,
        y,
        ("teacher_hidden", "student_hidden"),
        "mse",
        LogitMSE(),
        regression=True,
    )


def applications():
    """keras.applications at 32x32, weights=None: an EfficientNetB0 teacher
    with its default softmax head, a MobileNetV3Small student."""
    rng = _rng(0)
    x = rng.uniform(0, 255, size=(N, 32, 32, 3)).astype("float32")
    y = np.argmax(x.mean(axis=(1, 2)), axis=1).astype("int64")
    teacher = keras.applications.EfficientNetB0(
        weights=None, input_shape=(32, 32, 3), classes=CLASSES
    )
    student = keras.applications.MobileNetV3Small(
        weights=None, input_shape=(32, 32, 3), classes=CLASSES, minimalistic=True, alpha=0.75
    )
    return Kind("applications", teacher, student, x, y, None, _ce(from_logits=False))


def bert():
    """A keras-hub tiny BertBackbone classifier (from a config, no download)."""
    import keras_hub

    rng = _rng(0)
    ids = rng.integers(1, 50, size=(N, 8)).astype("int32")
    x = {
        "token_ids": ids,
        "segment_ids": np.zeros_like(ids),
        "padding_mask": np.ones_like(ids),
    }
    y = (ids[:, 0] % CLASSES).astype("int64")
    models = []
    for name, layers in (("teacher", 2), ("student", 1)):
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=50,
            num_layers=layers,
            num_heads=2,
            hidden_dim=16,
            intermediate_dim=32,
            max_sequence_length=8,
            name=f"{name}_bert",
        )
        out = keras.layers.Dense(CLASSES)(backbone(backbone.input)["pooled_output"])
        models.append(keras.Model(backbone.input, out, name=name))
    return Kind("bert", *models, x, y, None, _ce())


def mixed_precision():
    """A CNN pair built under the mixed_float16 policy (float32 logits)."""
    rng = _rng(0)
    x = rng.normal(size=(N, 8, 8, 3)).astype("float32")
    y = np.argmax(x.mean(axis=(1, 2)), axis=1).astype("int64")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        models = []
        for name, width in (("teacher", 16), ("student", 4)):
            x_in = keras.Input((8, 8, 3))
            conv = keras.layers.Conv2D(
                width, 3, padding="same", activation="relu", name=f"{name}_conv"
            )
            pooled = keras.layers.GlobalAveragePooling2D()(conv(x_in))
            out = keras.layers.Dense(CLASSES, dtype="float32")(pooled)
            models.append(keras.Model(x_in, out, name=name))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return Kind(
        "mixed_precision",
        *models,
        x,
        y,
        ("teacher_conv", "student_conv"),
        _ce(),
        hint_loss="attention",
    )


BUILDERS = {
    "sequential_input": sequential("input"),
    "sequential_called": sequential("called"),
    "sequential_bare": sequential("bare"),
    "functional": functional,
    "two_inputs_list": two_inputs("list"),
    "two_inputs_dict": two_inputs("dict"),
    "nested": nested,
    "subclassed": subclassed,
    "text": text,
    "regression": regression,
    "applications": applications,
    "bert": bert,
    "mixed_precision": mixed_precision,
}
KINDS = list(BUILDERS)
# Built and trained in seconds: these carry every feature.
CHEAP = [k for k in KINDS if k not in ("applications", "bert")]


def unavailable(name) -> str | None:
    """Why `name` cannot be built under the Keras in use, or None."""
    if name == "bert":
        if backend.LEGACY_KERAS:
            return "keras-hub needs Keras 3; tf_keras has no BertBackbone"
        try:
            import keras_hub  # noqa: F401
        except ImportError:
            return "keras-hub is not installed (pip install -e .[test])"
    return None


def build(name) -> Kind:
    """Builds the kind `name` afresh (skips the test where it cannot exist)."""
    import pytest

    reason = unavailable(name)
    if reason:
        pytest.skip(reason)
    kind = BUILDERS[name]()
    if kind.distillation_loss is None:
        kind.distillation_loss = SoftTargetKD(2.0)
    return kind


def compiled(kind, distiller, learning_rate=0.01, **kwargs):
    distiller.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=kind.hard_loss,
        **kwargs,
    )
    return distiller


@functools.cache
def _trained(name):
    kind = build(name)
    distiller = compiled(
        kind, kind.distiller(), learning_rate=0.003 if name == "applications" else 0.01
    )
    history = distiller.fit(kind.x, kind.y, batch_size=16, epochs=4, verbose=0).history
    return kind, distiller, history


def trained(name):
    """(kind, distiller, history): a Distiller of `name` fitted online for four
    epochs, once per session."""
    import pytest

    reason = unavailable(name)
    if reason:
        pytest.skip(reason)
    return _trained(name)
