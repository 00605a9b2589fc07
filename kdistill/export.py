"""Export a student for deployment: `.tflite` and SavedModel files.

`to_tflite` converts a Keras model to a TFLite (LiteRT) flatbuffer with
optional quantization; `to_saved_model` writes a SavedModel for TensorFlow
Serving and GPUs. Every file is written atomically. Running and measuring the
files (`TFLiteModel`, `evaluate_tflite`) is `kdistill.tflite`'s job.

Quantization modes:

| mode      | weights | activations | needs representative data |
|-----------|---------|-------------|---------------------------|
| "none"    | float32 | float32     | no                        |
| "dynamic" | int8    | float32     | no                        |
| "float16" | float16 | float32     | no                        |
| "int8"    | int8    | int8        | yes                       |
"""

from __future__ import annotations

import gzip
import re

import numpy as np

from kdistill import atomic, quiet, validation
from kdistill.backend import keras, tf

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")


def convert(
    model,
    quantization: str = "none",
    representative_data=None,
    int8_io: bool = False,
    select_tf_ops: bool = False,
    calibration_samples: int = 500,
) -> bytes:
    """Converts a Keras model to a TFLite flatbuffer.

    Args:
        model: A Keras 3 or tf_keras model (strip tfmot wrappers first).
        quantization: One of "none", "dynamic", "float16", "int8".
        representative_data: Array of typical inputs; required for "int8".
        int8_io: For "int8", make the input and output tensors int8 too
            (default float32 in and out, quantized inside).
        select_tf_ops: Allow TensorFlow ops that TFLite lacks (SELECT_TF_OPS;
            the runtime then needs the Flex delegate).
        calibration_samples: How many representative samples to calibrate on.

    Returns:
        The flatbuffer bytes.
    """
    check_quantization(quantization, representative_data)
    function = _serving_function(model, representative_data)
    # Without a trackable object the converter freezes variables into
    # constants, the layout phones run fastest (and that weight_sparsity reads).
    with quiet.native_logs():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        samples = np.asarray(representative_data, dtype=np.float32)[:calibration_samples]

        def representative():
            for sample in samples:
                yield [sample[None, ...]]

        converter.representative_dataset = representative
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    if select_tf_ops:
        ops = ops + [tf.lite.OpsSet.SELECT_TF_OPS]
    converter.target_spec.supported_ops = ops
    try:
        with quiet.native_logs():
            return converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises many kinds
        raise _conversion_error(error, select_tf_ops) from error


def check_quantization(quantization: str, representative_data=None) -> None:
    """Raises a clear error for an unknown mode or int8 without calibration data."""
    validation.check_choice(quantization, "quantization", QUANTIZATIONS)
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            'Invalid value for argument `representative_data`: quantization="int8" '
            "needs a representative dataset to calibrate activation ranges. Pass "
            "a few hundred training inputs, e.g. representative_data=x_train[:500], "
            'or choose quantization="dynamic" which needs none.'
        )


def to_tflite(
    model, path: str, quantization: str = "none", representative_data=None, **kwargs
) -> dict:
    """Converts `model` and writes the `.tflite` file atomically.

    Args:
        model: The Keras model (for a Distiller, pass `distiller.student`).
        path: Target file path.
        quantization: "none", "dynamic", "float16" or "int8".
        representative_data: Typical inputs; required for "int8".
        **kwargs: `int8_io`, `select_tf_ops`, `calibration_samples` (see
            `convert`).

    Returns:
        A dict with `path`, `quantization`, `size_bytes`, `gzip_size_bytes`.

    Example:
        >>> info = to_tflite(student, "student_int8.tflite", quantization="int8",
        ...                  representative_data=x_train[:500])
    """
    flatbuffer = convert(model, quantization, representative_data, **kwargs)
    atomic.write_bytes(path, flatbuffer)
    return {
        "path": path,
        "quantization": quantization,
        "size_bytes": len(flatbuffer),
        "gzip_size_bytes": gzip_size(flatbuffer),
    }


def to_saved_model(model, path: str) -> str:
    """Writes `model` as a TensorFlow SavedModel directory, atomically.

    The `serving_default` signature takes the model's input and returns its
    output, for TensorFlow Serving and GPU inference.

    Returns:
        The path.
    """
    function = _serving_function(model, None)
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda x: {"output": model(x, training=False)})
    signature = module.serve.get_concrete_function(function.structured_input_signature[0][0])
    with atomic.directory(path) as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": signature})
    return path


def gzip_size(data: bytes) -> int:
    """Size of `data` after gzip at level 9: what a download really costs."""
    return len(gzip.compress(data, compresslevel=9))


# ---------------------------------------------------------------------------


def _serving_function(model, sample_data):
    if not isinstance(model, (keras.Model, keras.layers.Layer)):
        raise TypeError(
            "Invalid value for argument `model`. Expected a Keras model (for a "
            f"Distiller pass distiller.student). Received: {type(model).__name__}"
        )
    inputs = getattr(model, "inputs", None)
    if inputs:
        shape = [None, *inputs[0].shape[1:]]
    elif sample_data is not None:
        shape = [None, *np.asarray(sample_data).shape[1:]]
    else:
        raise ValueError(
            f"Cannot tell the input shape of the subclassed model {model.name!r}. "
            "Build it as a functional or Sequential model with an Input layer, or "
            "pass `representative_data`."
        )
    function = tf.function(lambda x: model(x, training=False))
    return function.get_concrete_function(tf.TensorSpec(shape, tf.float32))


def _conversion_error(error, select_tf_ops) -> Exception:
    message = str(error)
    listed = re.search(r"TF Select ops: ([\w, ]+)", message)
    if listed:
        ops = sorted({op.strip() for op in listed.group(1).split(",") if op.strip()})
    else:
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither", message)))
    if not select_tf_ops and ("not supported" in message or ops):
        names = ", ".join(ops) if ops else "(see the converter message below)"
        return ValueError(
            f"The TFLite converter cannot lower these TensorFlow ops to TFLite "
            f"builtins: {names}. Replace them in the model, or convert with "
            "select_tf_ops=True (adds tf.lite.OpsSet.SELECT_TF_OPS; the app then "
            "needs the TFLite Flex delegate).\nConverter message: " + message[:2000]
        )
    return RuntimeError(f"TFLite conversion failed: {message[:4000]}")
