"""The catalogue of bad inputs: each gives a kdistill (or clear Keras) error
whose message names the argument and the fix. The README lists these cases."""

import numpy as np
import pytest
from conftest import tiny_mlp, toy_data

from kdistill import (
    Distiller,
    backend,
    compare,
    data,
    export,
    losses,
    offline,
    saving,
)
from kdistill.backend import keras
from kdistill.callbacks import TemperatureScheduler
from kdistill.compare import pareto, strategies
from kdistill.tflite import evaluate_tflite


def compiled(**kwargs):
    distiller = Distiller(tiny_mlp(name="teacher", units=16), tiny_mlp(name="student"), **kwargs)
    distiller.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return distiller


def fit(x, y, **kwargs):
    return lambda: compiled().fit(x, y, epochs=1, verbose=0, **kwargs)


def other_keras_model():
    if backend.LEGACY_KERAS:
        import keras as other
    else:
        import tf_keras as other
    return other.Sequential([other.Input((4,)), other.layers.Dense(3)])


class CatMatrixInverse(keras.layers.Layer):
    def call(self, x):
        import tensorflow as tf

        return tf.linalg.inv(tf.reshape(x[:, :4], (-1, 2, 2)))[:, 0, :]


def unsupported_op_model():
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(2)(CatMatrixInverse()(inputs)))


X, Y = toy_data()
TEACHER = tiny_mlp(name="teacher", units=16)


def nan_inputs():
    x = X.copy()
    x[37, 1] = np.nan
    return x


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def npz_without_keys(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((2, 4)), labels=np.zeros(2))
    return str(path)


def lambda_model_file(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    return path


def with_nan(array, index=5):
    array = np.array(array, dtype="float32")
    array.reshape(len(array), -1)[index, 0] = np.nan
    return array


def offline_fit(teacher_outputs):
    distiller = Distiller(None, tiny_mlp(name="student"))
    distiller.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    y = offline.offline_targets(Y, teacher_outputs)
    return distiller.fit(X, y, epochs=1, verbose=0)


def nan_teacher():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, bias_initializer="zeros")(inputs) * np.nan)


def fit_with_learning_rate(learning_rate):
    distiller = Distiller(TEACHER, tiny_mlp(name="s"))
    distiller.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return distiller.fit(X * 1e3, Y, batch_size=16, epochs=2, verbose=0)


def fit_online(teacher):
    distiller = Distiller(teacher, tiny_mlp(name="s"))
    distiller.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return distiller.fit(X, Y, batch_size=16, epochs=1, verbose=0)


def dataset(x, y):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def npz(tmp_path, **changes):
    arrays = {
        "x_train": np.random.default_rng(0).uniform(0, 1, (40, 4, 4)).astype("float32"),
        "y_train": np.arange(40) % 4,
        "x_test": np.random.default_rng(1).uniform(0, 1, (20, 4, 4)).astype("float32"),
        "y_test": np.arange(20) % 4,
    }
    arrays.update(changes)
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return data.load(data_path=str(path))


CASES = {
    "output shapes differ": (
        lambda tmp: Distiller(TEACHER, tiny_mlp(name="s", classes=5)),
        ValueError,
        r"different shapes: teacher \(None, 3\) and student \(None, 5\)",
    ),
    "input shapes differ": (
        lambda tmp: Distiller(TEACHER, tiny_mlp(name="s", inputs=7)),
        ValueError,
        "inputs of different shapes",
    ),
    "student is the teacher": (
        lambda tmp: Distiller(TEACHER, TEACHER),
        ValueError,
        "same object as `teacher`",
    ),
    "teacher variables would change (shared layers)": (
        lambda tmp: Distiller(
            TEACHER,
            keras.Sequential(
                [keras.Input((4,)), TEACHER.get_layer("teacher_hidden"), keras.layers.Dense(3)]
            ),
        ),
        ValueError,
        "shares layers with `teacher`",
    ),
    "alpha above 1": (
        lambda tmp: Distiller(TEACHER, tiny_mlp(name="s"), alpha=1.5),
        ValueError,
        "argument `alpha`",
    ),
    "alpha below 0": (
        lambda tmp: Distiller(TEACHER, tiny_mlp(name="s"), alpha=-0.5),
        ValueError,
        "argument `alpha`",
    ),
    "temperature zero": (
        lambda tmp: losses.SoftTargetKD(0),
        ValueError,
        "argument `temperature`. Expected a positive",
    ),
    "temperature not a number": (
        lambda tmp: losses.SoftTargetKD("4"),
        TypeError,
        "argument `temperature`. Expected a number",
    ),
    "labels outside the class range": (
        lambda tmp: fit(X, Y + 5)(),
        ValueError,
        r"labels must lie in \[0, 3\)",
    ),
    "one-hot labels with a sparse loss": (
        lambda tmp: fit(X, np.eye(3)[Y])(),
        ValueError,
        "look one-hot",
    ),
    "sparse labels with a one-hot loss": (
        lambda tmp: (
            lambda d: (
                d.compile(
                    optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True)
                ),
                d.fit(X, Y, verbose=0),
            )
        )(Distiller(TEACHER, tiny_mlp(name="s"))),
        ValueError,
        "expects one-hot rows",
    ),
    "NaN in inputs names the batch": (
        lambda tmp: fit(nan_inputs(), Y, batch_size=16)(),
        ValueError,
        r"sample 37 contains NaN or inf \(batch 2 at batch_size 16\)",
    ),
    "NaN in sample weights": (
        lambda tmp: fit(X, Y, sample_weight=with_nan(np.ones(64), 9))(),
        ValueError,
        r"`sample_weight`: sample 9 contains NaN or inf",
    ),
    "negative sample weights": (
        lambda tmp: fit(X, Y, sample_weight=np.where(np.arange(64) == 4, -1.0, 1.0))(),
        ValueError,
        r"`sample_weight`: sample 4 is -1. Sample weights must be >= 0",
    ),
    "sample weights all zero": (
        lambda tmp: fit(X, Y, sample_weight=np.zeros(64))(),
        ValueError,
        "every weight is 0",
    ),
    "NaN in cached teacher outputs": (
        lambda tmp: offline_fit(with_nan(np.zeros((64, 3)), 11)),
        ValueError,
        r"`teacher_outputs`: sample 11 contains NaN or inf",
    ),
    "labels that are not whole numbers": (
        lambda tmp: fit(X, Y + 0.5)(),
        ValueError,
        r"class labels must be whole numbers, but label 0 is \d.5",
    ),
    "string labels": (
        lambda tmp: fit(X, np.array(["cat", "dog"] * 32))(),
        TypeError,
        r"argument `y`. Expected numbers.*strings.*numpy.unique",
    ),
    "string labels in a dataset": (
        lambda tmp: fit(dataset(X, np.array(["cat", "dog"] * 32)), None)(),
        TypeError,
        r"argument `y`: the dataset's y are strings",
    ),
    "NaN in labels": (
        lambda tmp: fit(X, with_nan(Y, 3))(),
        ValueError,
        r"`y`: sample 3 contains NaN or inf",
    ),
    "batch_size zero": (
        lambda tmp: fit(X, Y, batch_size=0)(),
        ValueError,
        r"argument `batch_size`. Expected (an integer >= 1|a positive integer). Received: batch_size=0",
    ),
    "epochs negative": (
        lambda tmp: compiled().fit(X, Y, epochs=-1, verbose=0),
        ValueError,
        r"argument `epochs`. Expected (an integer >= 1|a positive integer). Received: epochs=-1",
    ),
    "ragged Python list": (
        lambda tmp: fit([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]], [0, 1])(),
        ValueError,
        r"`x`: it is a ragged Python list",
    ),
    "non-finite loss (learning rate far too high)": (
        lambda tmp: fit_with_learning_rate(1e30),
        ValueError,
        r"training loss became (nan|inf) at epoch \d, step \d+.*learning rate too high",
    ),
    "teacher whose outputs are NaN": (
        lambda tmp: fit_online(nan_teacher()),
        ValueError,
        r"training loss became nan at epoch 1, step 1.*teacher whose outputs are not finite",
    ),
    "NaN in the data to cache teacher outputs for": (
        lambda tmp: offline.cache_teacher_outputs(TEACHER, nan_inputs()),
        ValueError,
        r"argument `data`: sample 37 contains NaN or inf",
    ),
    "teacher whose cached outputs are NaN": (
        lambda tmp: offline.cache_teacher_outputs(nan_teacher(), X),
        ValueError,
        r"teacher's outputs are NaN or inf for sample 0",
    ),
    "offline targets with NaN": (
        lambda tmp: offline.offline_targets(Y, with_nan(np.zeros((64, 3)), 2)),
        ValueError,
        r"`teacher_outputs`: sample 2 contains NaN or inf",
    ),
    "temperature above the supported range": (
        lambda tmp: losses.SoftTargetKD(1e5),
        ValueError,
        r"argument `temperature`. Expected a number in \[0.01, 10000.0\].*LogitMSE",
    ),
    "temperature below the supported range": (
        lambda tmp: losses.functional.soft_target_kd([[1.0, 2.0]], [[1.0, 2.0]], 1e-3),
        ValueError,
        r"argument `temperature`. Expected a number in \[0.01, 10000.0\]",
    ),
    "temperature schedule leaving the supported range": (
        lambda tmp: fit(X, Y, callbacks=[TemperatureScheduler(lambda epoch: 5e4)])(),
        ValueError,
        r"argument `temperature`. Expected a number in \[0.01, 10000.0\]. Received: "
        r"temperature=50000.0",
    ),
    ".npz with NaN": (
        lambda tmp: npz(tmp, x_train=with_nan(np.ones((40, 4, 4)), 7)),
        ValueError,
        r"data.npz, key x_train: sample 7 contains NaN or inf",
    ),
    ".npz with labels that are not whole numbers": (
        lambda tmp: npz(tmp, y_test=np.arange(20) % 4 + 0.5),
        ValueError,
        r"data.npz, key y_test: class labels must be whole numbers",
    ),
    ".npz with string labels": (
        lambda tmp: npz(tmp, y_train=np.array(["a", "b"] * 20)),
        TypeError,
        r"data.npz, key y_train.*Expected numbers.*strings",
    ),
    ".npz with negative labels": (
        lambda tmp: npz(tmp, y_train=np.arange(40) % 4 - 1),
        ValueError,
        r"data.npz, key y_train: labels must lie in \[0, ",
    ),
    ".npz with test labels the training split lacks": (
        lambda tmp: npz(tmp, y_test=np.arange(20) % 6),
        ValueError,
        r"data.npz, key y_test: label 4 is 4, a class y_train never has",
    ),
    ".npz splits on different scales": (
        lambda tmp: npz(tmp, x_train=np.full((40, 4, 4), 16.0, "float32")),
        ValueError,
        r"data.npz: `x_train` and `x_test` are on different scales",
    ),
    "inputs of another shape than the student's (digits model on MNIST)": (
        lambda tmp: fit(np.zeros((64, 28, 28, 1), "float32"), Y)(),
        ValueError,
        r"`x`: its samples have shape \(28, 28, 1\), but the student takes samples of "
        r"shape \(4,\)",
    ),
    "data of another shape than the teacher's, to cache": (
        lambda tmp: offline.cache_teacher_outputs(TEACHER, np.zeros((8, 7), "float32")),
        ValueError,
        r"`data`: its samples have shape \(7,\), but the teacher takes samples of shape \(4,\)",
    ),
    "NaN in validation data": (
        lambda tmp: fit(X, Y, validation_data=(nan_inputs(), Y))(),
        ValueError,
        r"argument `validation_data` \(its x\): sample 37 contains NaN or inf",
    ),
    "empty arrays": (lambda tmp: fit(X[:0], Y[:0])(), ValueError, "holds no samples"),
    "empty dataset": (
        lambda tmp: fit(
            __import__("tensorflow").data.Dataset.from_tensor_slices((X, Y)).take(0).batch(4), None
        )(),
        ValueError,
        "the dataset is empty",
    ),
    "mismatched x and y lengths": (
        lambda tmp: fit(X, Y[:10])(),
        ValueError,
        "`y`: it has 10 rows but `x` has 64",
    ),
    "hint layer that does not exist": (
        lambda tmp: Distiller(
            TEACHER, tiny_mlp(name="s"), losses.HintLoss("teacher_hidden", "s_missing")
        ),
        ValueError,
        "no layer named 's_missing'. Its layers are",
    ),
    "feature shape the adapter cannot map": (
        lambda tmp: Distiller(
            TEACHER,
            tiny_mlp(name="s"),
            losses.HintLoss("teacher_hidden", "s_hidden", adapter="none"),
        ),
        ValueError,
        "different shapes",
    ),
    "model from the other Keras": (
        lambda tmp: Distiller(other_keras_model(), tiny_mlp(name="s")),
        TypeError,
        "other Keras.*TF_USE_LEGACY_KERAS",
    ),
    "int8 export without representative data": (
        lambda tmp: export.to_tflite(tiny_mlp(), str(tmp / "m.tflite"), "int8"),
        ValueError,
        "needs a representative dataset",
    ),
    "corrupt .tflite file": (
        lambda tmp: evaluate_tflite(write(tmp, "m.tflite", b"\x00" * 64), X),
        ValueError,
        "corrupt or truncated",
    ),
    "truncated .keras file": (
        lambda tmp: saving.load_model(write(tmp, "m.keras", b"PK\x03\x04 truncated")),
        ValueError,
        "not a valid .keras file",
    ),
    "missing .keras file": (
        lambda tmp: saving.load_model(str(tmp / "none.keras")),
        FileNotFoundError,
        "No model file at",
    ),
    ".keras file that runs code": (
        lambda tmp: saving.load_model(lambda_model_file(tmp)),
        ValueError,
        "--unsafe_load",
    ),
    "unknown loss name": (
        lambda tmp: losses.get("kl_div"),
        ValueError,
        "Valid names: attention, dkd, generalized_jsd, hint, logit_mse, per_output, "
        "reverse_kl, soft_target",
    ),
    "unknown strategy name": (
        lambda tmp: strategies.parse("kd+int4"),
        ValueError,
        "Unknown strategy 'kd\\+int4'",
    ),
    "budget no strategy meets": (
        lambda tmp: (_ for _ in ()).throw(
            ValueError(
                pareto.recommend(
                    [
                        {
                            "strategy": "kd",
                            "student": "w8",
                            "status": "ok",
                            "accuracy": 0.9,
                            "tflite_size_bytes": 9000,
                            "latency_ms": 0.1,
                        }
                    ],
                    pareto.Budget(max_size_kb=1),
                )["message"]
            )
        ),
        ValueError,
        "No strategy meets the budget",
    ),
    "unwritable output directory": (
        lambda tmp: compare.run(
            output_dir=write(tmp, "f", b"x") + "/run", strategy_names=["labels"], verbose=False
        ),
        PermissionError,
        "Cannot create the output directory",
    ),
    "compare workers below 1": (
        lambda tmp: compare.run(output_dir=str(tmp / "run"), workers=0, verbose=False),
        ValueError,
        "argument `workers`.*integer >= 1",
    ),
    ".npz without the expected keys": (
        lambda tmp: data.load(data_path=npz_without_keys(tmp)),
        ValueError,
        r"lacks the keys \['x_train'",
    ),
    "unknown quantization mode": (
        lambda tmp: export.convert(tiny_mlp(), "int4"),
        ValueError,
        "argument `quantization`",
    ),
    "op the converter cannot lower": (
        lambda tmp: export.convert(unsupported_op_model()),
        ValueError,
        "MatrixInverse.*SELECT_TF_OPS",
    ),
    "distillation loss weights that do not pair up": (
        lambda tmp: Distiller(
            TEACHER,
            tiny_mlp(name="s"),
            [losses.SoftTargetKD(), losses.LogitMSE()],
            distillation_loss_weights=[1.0],
        ),
        ValueError,
        "one weight per distillation loss",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_clear_error(case, tmp_path):
    make, error, message = CASES[case]
    with pytest.raises(error, match=message):
        make(tmp_path)


def test_unsafe_load_opt_in_executes_the_stored_lambda(tmp_path):
    model = saving.load_model(lambda_model_file(tmp_path), unsafe=True)
    np.testing.assert_allclose(model(X[:2]).numpy(), 2.0 * X[:2], rtol=1e-6)
