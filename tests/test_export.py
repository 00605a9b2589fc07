import os

import numpy as np
import pytest
from conftest import tiny_mlp, toy_data

from kdistill import Distiller, atomic, export, tflite
from kdistill.backend import keras, tf
from kdistill.callbacks import ExportTFLite


def test_int8_without_representative_data_is_a_clear_error(tmp_path):
    with pytest.raises(
        ValueError, match='argument `representative_data`: quantization="int8" needs'
    ):
        export.to_tflite(tiny_mlp(), str(tmp_path / "m.tflite"), "int8")
    assert not (tmp_path / "m.tflite").exists()


def test_unknown_quantization_lists_the_modes(tmp_path):
    with pytest.raises(
        ValueError,
        match="argument `quantization`. Expected one of 'none', 'dynamic', 'float16', 'int8'",
    ):
        export.to_tflite(tiny_mlp(), str(tmp_path / "m.tflite"), "int4")


class MatrixInverse(keras.layers.Layer):
    def call(self, x):
        return tf.linalg.inv(tf.reshape(x[:, :4], (-1, 2, 2)))[:, 0, :]


def test_unsupported_op_is_named_with_the_select_tf_ops_option():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2)(MatrixInverse()(inputs)))
    with pytest.raises(
        ValueError, match=r"builtins: MatrixInverse\. .*select_tf_ops=True.*SELECT_TF_OPS"
    ):
        export.convert(model)
    assert len(export.convert(model, select_tf_ops=True)) > 0


def test_interrupted_export_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "student.tflite"
    path.write_bytes(b"previous export")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_bytes(str(path), b"x" * 1000)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["student.tflite"]


def test_saved_model_serves_the_keras_outputs(tmp_path):
    x, _ = toy_data()
    model = tiny_mlp()
    path = str(tmp_path / "savedmodel")
    export.to_saved_model(model, path)
    export.to_saved_model(model, path)  # replacing an existing export works too
    served = tf.saved_model.load(path).signatures["serving_default"](tf.constant(x))["output"]
    np.testing.assert_allclose(served.numpy(), model(x).numpy(), atol=1e-6)


def test_export_callback_writes_the_student_at_the_end_of_fit(tmp_path):
    x, y = toy_data()
    distiller = Distiller(tiny_mlp(name="teacher", units=16), tiny_mlp(name="student"))
    distiller.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    callback = ExportTFLite(str(tmp_path / "s.tflite"))
    distiller.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    outputs = tflite.TFLiteModel(callback.info["path"]).predict(x)
    np.testing.assert_allclose(outputs, distiller.student.predict(x, verbose=0), atol=1e-4)


def test_export_callback_with_monitor_exports_the_best_epoch(tmp_path):
    x, y = toy_data()
    distiller = Distiller(tiny_mlp(name="teacher", units=16), tiny_mlp(name="student"))
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    snapshots = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: snapshots.append(distiller.student.get_weights())
    )
    callback = ExportTFLite(str(tmp_path / "best.tflite"), monitor="val_loss")
    history = distiller.fit(
        x, y, epochs=6, validation_data=(x[:16], y[:16]), verbose=0, callbacks=[keep, callback]
    ).history
    best = int(np.argmin(history["val_loss"]))
    assert callback.best_epoch == best
    final = distiller.student.get_weights()
    reference = keras.models.clone_model(distiller.student)
    reference.set_weights(snapshots[best])
    outputs = tflite.TFLiteModel(callback.info["path"]).predict(x)
    np.testing.assert_allclose(outputs, reference.predict(x, verbose=0), atol=1e-4)
    for a, b in zip(final, distiller.student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_export_callback_rejects_int8_without_data_before_training():
    with pytest.raises(ValueError, match="representative_data"):
        ExportTFLite("s.tflite", quantization="int8")


# -- numbers of an int8 file, worked out by hand ----------------------------------


def identity_model():
    """One Dense unit with weight 1 and bias 0: y = x."""
    x_in = keras.Input((1,))
    dense = keras.layers.Dense(1)
    model = keras.Model(x_in, dense(x_in))
    dense.set_weights([np.ones((1, 1), "float32"), np.zeros(1, "float32")])
    return model


# Calibration reads the first 3 samples: range [-1, 3]. A 4th (100) or one fewer
# at either end would change it.
CALIBRATION = np.array([[-1.0], [0.5], [3.0], [100.0]], "float32")


def int8_io_identity():
    return export.convert(
        identity_model(), "int8", CALIBRATION, int8_io=True, calibration_samples=3
    )


def test_int8_io_outputs_are_dequantized_to_the_float_values():
    # Range [-1, 3] over 255 steps: scale 4/255; zero point -128 + 1 / (4/255) =
    # -64.25, rounded to -64. So int8 q stands for (q + 64) * 4/255, and the
    # identity's outputs come back within one step (4/255 = 0.0157) of its inputs.
    # A zero point applied with the wrong sign would be off by 128 steps (2.0).
    flatbuffer = int8_io_identity()
    x = np.array([[-1.0], [0.0], [0.5], [1.0], [2.0], [3.0]], "float32")
    np.testing.assert_allclose(tflite.TFLiteModel(flatbuffer).predict(x), x, atol=4 / 255)


def test_int8_calibration_reads_exactly_calibration_samples():
    interpreter = tf.lite.Interpreter(model_content=int8_io_identity())
    for details in (interpreter.get_input_details(), interpreter.get_output_details()):
        scale, zero_point = details[0]["quantization"]
        assert scale == pytest.approx(4 / 255, rel=1e-6)
        assert zero_point == -64


# -- data that does not fit is refused before anything is written (issue #26) --------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_representative_data_names_the_first_index_and_writes_nothing(bad, tmp_path):
    x, _ = toy_data()
    x[5, 2] = bad
    with pytest.raises(
        ValueError,
        match=rf"argument `representative_data`: sample 5 contains NaN or inf, a value of {bad}\. "
        r"Nothing was trained or saved",
    ):
        export.to_tflite(tiny_mlp(), str(tmp_path / "m.tflite"), "int8", x)
    assert not (tmp_path / "m.tflite").exists()


def test_empty_representative_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"`representative_data`: it holds no samples \(shape"):
        export.to_tflite(tiny_mlp(), str(tmp_path / "m.tflite"), "int8", np.zeros((0, 4)))
    assert not (tmp_path / "m.tflite").exists()


def test_representative_data_of_another_shape_names_both_shapes(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"the model input '\w+' expects arrays of shape \(None, 4\) \(None: any size\), "
        r"but it received shape \(10, 28, 28, 1\)",
    ):
        export.to_tflite(tiny_mlp(), str(tmp_path / "m.tflite"), "int8", np.zeros((10, 28, 28, 1)))


def test_python_lists_are_read_as_arrays_and_ragged_ones_refused_in_one_line():
    x, _ = toy_data()
    model = tiny_mlp()
    from_list = tflite.TFLiteModel(export.convert(model, "int8", x.tolist()))
    np.testing.assert_allclose(from_list.predict(x.tolist()), model.predict(x, verbose=0), atol=0.1)
    ragged = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6]] * 50
    with pytest.raises(
        ValueError,
        match=r"^Invalid value for argument `representative_data`: it "
        r"is a ragged Python list .*Pad the rows to one length",
    ) as info:
        export.convert(model, "int8", ragged)
    assert len(str(info.value).splitlines()) == 1
    assert "0.6" not in str(info.value)


def test_int8_file_left_in_float_is_an_error_not_a_file_labelled_int8(tmp_path, monkeypatch):
    # As with empty or NaN calibration before these checks: the calibrator sees
    # nothing, and the converter quietly writes float32 ops.
    monkeypatch.setattr(export, "_calibration", lambda *args: lambda: iter([]))
    with pytest.raises(
        ValueError,
        match=r'quantization="int8" conversion left the FULLY_CONNECTED op on float '
        r"tensors .*not an int8 model and was not written",
    ):
        export.to_tflite(tiny_mlp(), str(tmp_path / "m.tflite"), "int8", toy_data()[0])
    assert not (tmp_path / "m.tflite").exists()


def test_a_directory_or_a_path_under_a_file_is_one_clear_error_before_any_work(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    cases = {
        str(tmp_path): r"is a directory. Expected a file path, e.g. '.*student.tflite'",
        str(tmp_path / "file" / "m.tflite"): r"lies under '.*file', which is a file, not a "
        "directory",
        str(tmp_path / "file" / "deeper" / "m.tflite"): r"lies under '.*file', which is a file",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=r"argument `path`: .*" + message):
            export.to_tflite(tiny_mlp(), path)
        with pytest.raises(ValueError, match=r"argument `path`: .*" + message):
            ExportTFLite(path)


def test_a_dataset_as_representative_data_says_to_gather_arrays():
    x, y = toy_data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(
        ValueError, match=r"`representative_data`: it is a tf.data.Dataset\. Expected arrays"
    ):
        export.convert(tiny_mlp(), "int8", dataset)


def test_export_callback_checks_representative_data_before_the_first_epoch(tmp_path):
    x, y = toy_data()
    bad = x.copy()
    bad[3, 1] = np.nan
    model = tiny_mlp()
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    epochs = []
    seen = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: epochs.append(e))
    callback = ExportTFLite(str(tmp_path / "s.tflite"), "int8", representative_data=bad)
    with pytest.raises(ValueError, match=r"sample 3 contains NaN or inf, a value of nan"):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[callback, seen])
    assert epochs == []
    assert not (tmp_path / "s.tflite").exists()
