"""Running and measuring .tflite files: outputs, accuracy, size, latency, and a quiet terminal."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import two_heads

from kdistill import export, models, tflite, training
from kdistill.backend import keras


@pytest.fixture(scope="module")
def digits_model(digits):
    keras.utils.set_random_seed(0)
    model = models.mlp(digits.input_shape, 10, (512, 512), name="exported")
    return training.fit_supervised(model, digits, training.FitSettings(epochs=10, seed=0))


@pytest.fixture(scope="module")
def exported(digits_model, digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    infos = {}
    for mode in export.QUANTIZATIONS:
        infos[mode] = export.to_tflite(
            digits_model,
            str(folder / f"{mode}.tflite"),
            mode,
            representative_data=digits.x_train[:300],
        )
    return infos


def test_float32_tflite_matches_keras_outputs(digits_model, digits, exported):
    reference = digits_model.predict(digits.x_test, verbose=0)
    outputs = tflite.TFLiteModel(exported["none"]["path"]).predict(digits.x_test)
    assert np.max(np.abs(outputs - reference)) < 1e-4


def test_quantized_files_keep_accuracy_and_shrink(digits, exported):
    reports = {
        m: tflite.evaluate_tflite(i["path"], digits.x_test, digits.y_test, latency_samples=20)
        for m, i in exported.items()
    }
    float_size = reports["none"]["size_bytes"]
    assert reports["int8"]["accuracy"] >= reports["none"]["accuracy"] - 0.015
    assert reports["int8"]["size_bytes"] <= 0.30 * float_size
    assert reports["float16"]["size_bytes"] <= 0.55 * float_size
    assert reports["dynamic"]["size_bytes"] <= 0.30 * float_size
    for report in reports.values():
        assert report["accuracy"] > 0.9
        assert 0 < report["latency_ms_median"] <= report["latency_ms_p95"]
        assert 0 < report["gzip_size_bytes"] <= report["size_bytes"] * 1.01


def test_int8_io_model_is_quantized_and_evaluated_through_scale_and_zero_point(
    digits_model, digits, tmp_path
):
    path = str(tmp_path / "io.tflite")
    export.to_tflite(
        digits_model, path, "int8", representative_data=digits.x_train[:300], int8_io=True
    )
    runner = tflite.TFLiteModel(path)
    assert runner.input_dtype == np.int8
    reference = digits_model.predict(digits.x_test, verbose=0)
    report = tflite.evaluate_tflite(
        path, digits.x_test, digits.y_test, reference_logits=reference, latency_samples=0
    )
    assert report["agreement"] > 0.97


def test_missing_and_corrupt_files_say_what_to_do(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match="No TFLite file at .*to_tflite"):
        tflite.evaluate_tflite(str(tmp_path / "nope.tflite"), np.zeros((1, 8, 8, 1)))
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(open(exported["none"]["path"], "rb").read()[:3000])
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a model at all")
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match="corrupt or truncated"):
            tflite.evaluate_tflite(str(path), np.zeros((1, 8, 8, 1), "float32"))


def test_model_with_two_outputs_converts_but_is_not_evaluated_as_one(tmp_path):
    info = export.to_tflite(two_heads(), str(tmp_path / "two_heads.tflite"))
    assert os.path.getsize(info["path"]) > 0
    with pytest.raises(ValueError, match="has 2 outputs; TFLiteModel runs models with one"):
        tflite.evaluate_tflite(info["path"], np.zeros((4, 4), "float32"))


QUIET_SCRIPT = textwrap.dedent(
    """
    import os
    import numpy as np
    from kdistill import export, tflite
    from kdistill.backend import keras, tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.random.RandomState(0).rand(16, 4).astype("float32")
    for mode in ("none", "int8"):
        report = tflite.evaluate_tflite(
            export.convert(model, mode, representative_data=x), x, np.zeros(16), latency_samples=5
        )
        print(mode, report["accuracy"])
    os.write(2, b"--- the converter without kdistill ---\\n")
    function = tf.function(lambda v: model(v)).get_concrete_function(tf.TensorSpec((None, 4)))
    tf.lite.TFLiteConverter.from_concrete_functions([function]).convert()
    os.write(2, b"--- an error the user must see ---\\n")

    class MatrixInverse(keras.layers.Layer):
        def call(self, v):
            return tf.linalg.inv(tf.reshape(v, (-1, 2, 2)))[:, 0, :]

    inputs = keras.Input((4,))
    export.convert(keras.Model(inputs, MatrixInverse()(inputs)))
    """
)


def test_conversion_and_evaluation_keep_tensorflow_chatter_off_stderr_but_not_errors():
    # TensorFlow logs from C++ straight to file descriptor 2: only a child process shows it.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    result = subprocess.run(
        [sys.executable, "-c", QUIET_SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["none", "int8"]
    kdistill_part, rest = result.stderr.split("--- the converter without kdistill ---")
    raw_part, error_part = rest.split("--- an error the user must see ---")
    for chatter in ("fully_quantize", "Ignored output_format", "XNNPACK"):
        assert chatter not in kdistill_part
        assert chatter not in error_part
    # The same conversion outside kdistill does print it here, so the check above means something.
    assert "Ignored output_format" in raw_part
    assert result.returncode != 0
    assert "builtins: MatrixInverse" in error_part
    assert "select_tf_ops=True" in error_part


# -- data that does not fit the file (issue #26) ------------------------------------


def test_one_hot_labels_say_to_pass_class_ids(digits, exported):
    one_hot = np.eye(10)[digits.y_test]
    with pytest.raises(
        ValueError,
        match=r"argument `y`: the labels look one-hot \(shape \(\d+, 10\)\), but class "
        r"indices are expected\. Pass y\.argmax\(-1\)",
    ):
        tflite.evaluate_tflite(exported["none"]["path"], digits.x_test, one_hot)


def test_labels_that_are_not_class_ids_name_the_first_offender(digits, exported):
    y = digits.y_test.astype("float32")
    y[3] = 2.5
    with pytest.raises(ValueError, match=r"class labels must be whole numbers, but label 3 is 2.5"):
        tflite.evaluate_tflite(exported["none"]["path"], digits.x_test, y)
    y = digits.y_test.copy()
    y[7] = 10
    with pytest.raises(
        ValueError,
        match=r"labels must lie in \[0, 10\) for a model with 10 classes.*\(label 7 is 10\)",
    ):
        tflite.evaluate_tflite(exported["none"]["path"], digits.x_test, y)


def test_digits_file_evaluated_on_mnist_shapes_names_expected_and_received(exported):
    with pytest.raises(
        ValueError,
        match=r"argument `x`: the model input '\w+' expects arrays of shape "
        r"\(None, 8, 8, 1\) \(None: any size\), but it received shape \(5, 28, 28, 1\)",
    ):
        tflite.evaluate_tflite(exported["none"]["path"], np.zeros((5, 28, 28, 1), "float32"))


def test_non_finite_test_inputs_name_the_first_index(digits, exported):
    x = digits.x_test.copy()
    x[4, 1, 2, 0] = np.nan
    with pytest.raises(
        ValueError, match=r"argument `x`: sample 4 contains NaN or inf, a value of nan"
    ):
        tflite.evaluate_tflite(exported["none"]["path"], x, digits.y_test)


def test_python_list_inputs_give_the_same_report_as_arrays(digits, exported):
    path = exported["none"]["path"]
    as_array = tflite.evaluate_tflite(path, digits.x_test, digits.y_test, latency_samples=0)
    as_list = tflite.evaluate_tflite(
        path, digits.x_test.tolist(), digits.y_test.tolist(), latency_samples=0
    )
    assert as_list["accuracy"] == as_array["accuracy"] > 0.9


def test_latency_samples_zero_skips_timing_and_negative_is_an_error(digits, exported):
    path = exported["none"]["path"]
    report = tflite.evaluate_tflite(path, digits.x_test, digits.y_test, latency_samples=0)
    assert "latency_ms_median" not in report
    assert report["accuracy"] > 0.9
    with pytest.raises(
        ValueError,
        match=r"argument `latency_samples`. Expected an integer >= 0. Received: "
        r"latency_samples=-5",
    ):
        tflite.evaluate_tflite(path, digits.x_test, digits.y_test, latency_samples=-5)


def test_a_directory_given_as_the_file_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"argument `model`: '.*' is a directory\. Expected a"):
        tflite.evaluate_tflite(str(tmp_path), np.zeros((1, 8, 8, 1), "float32"))
