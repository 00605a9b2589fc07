"""Export a student for deployment, and measure what comes out.

`to_tflite` converts a Keras model to a TFLite (LiteRT) flatbuffer with
optional quantization; `evaluate_tflite` runs the file with the LiteRT
interpreter and reports accuracy, size and latency; `to_saved_model` writes a
SavedModel for TensorFlow Serving and GPUs. Every file is written atomically.

Quantization modes:

| mode      | weights | activations | needs representative data |
|-----------|---------|-------------|---------------------------|
| "none"    | float32 | float32     | no                        |
| "dynamic" | int8    | float32     | no                        |
| "float16" | float16 | float32     | no                        |
| "int8"    | int8    | int8        | yes                       |
"""

from __future__ import annotations

import contextlib
import gzip
import re
import time

import numpy as np

from kdistill import atomic, validation
from kdistill.backend import keras, tf

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
_TFLITE_IDENTIFIER = b"TFL3"


def _interpreter_class():
    # LiteRT is TFLite's runtime; tf.lite.Interpreter is deprecated in TF 2.20+.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # platforms without a LiteRT wheel
        Interpreter = tf.lite.Interpreter
    return Interpreter


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
    with _quiet_absl():
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
        with _quiet_absl():
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


class TFLiteModel:
    """A `.tflite` model run by the LiteRT interpreter on float inputs.

    Handles quantized inputs and outputs itself (scale and zero point), so
    callers pass and receive float arrays whatever the quantization.

    Args:
        model: A path to a `.tflite` file or its bytes.
        num_threads: Interpreter threads (1 for comparable latency).
    """

    def __init__(self, model, num_threads: int = 1):
        self.content = _read_flatbuffer(model)
        interpreter_class = _interpreter_class()
        try:
            self._interpreter = interpreter_class(
                model_content=self.content, num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(
                f"The TFLite model {_describe(model)} could not be loaded ({error}). The "
                "file is corrupt or truncated: export it again with kdistill.export.to_tflite."
            ) from error
        output_count = len(self._interpreter.get_output_details())
        if output_count != 1:
            raise ValueError(
                f"The TFLite model {_describe(model)} has {output_count} outputs; "
                "TFLiteModel runs models with one. For a model with several "
                "outputs, export a model of the output to evaluate "
                "(keras.Model(model.input, model.outputs[0]))."
            )
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None

    @property
    def input_dtype(self):
        return self._input["dtype"]

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            shape = list(self._input["shape"])
            shape[0] = batch
            self._interpreter.resize_tensor_input(self._input["index"], shape)
            self._interpreter.allocate_tensors()
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
            self._batch = batch

    def _quantize(self, x):
        dtype = self._input["dtype"]
        if dtype in (np.int8, np.uint8):
            scale, zero_point = self._input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero_point), info.min, info.max)
        return x.astype(dtype)

    def _dequantize(self, y):
        if self._output["dtype"] in (np.int8, np.uint8):
            scale, zero_point = self._output["quantization"]
            return (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Runs one batch and returns float outputs."""
        self._resize(len(x))
        self._interpreter.set_tensor(
            self._input["index"], self._quantize(np.asarray(x, np.float32))
        )
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output["index"]))

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Returns float outputs for all of `x`, in batches."""
        x = np.asarray(x, np.float32)
        return np.concatenate(
            [self.invoke(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )

    def latency_ms(self, x: np.ndarray, samples: int = 200, warmup: int = 10) -> np.ndarray:
        """Per-sample latencies in ms, batch size 1, one call per sample."""
        x = np.asarray(x, np.float32)
        self._resize(1)
        timings = []
        for i in range(warmup + samples):
            sample = self._quantize(x[i % len(x)][None, ...])
            start = time.perf_counter()
            self._interpreter.set_tensor(self._input["index"], sample)
            self._interpreter.invoke()
            self._interpreter.get_tensor(self._output["index"])
            if i >= warmup:
                timings.append((time.perf_counter() - start) * 1e3)
        return np.asarray(timings)


def weight_sparsity(model) -> dict:
    """Share of exactly-zero values in the weight tensors of a `.tflite` model.

    Counts the constant tensors of rank >= 2 (Dense and Conv kernels), so a
    pruned model's zeros can be checked after conversion.

    Args:
        model: Path to a `.tflite` file, or its bytes.

    Returns:
        ``{"tensors": {name: share}, "overall": share}``.
    """
    runner = TFLiteModel(model)
    # Activations carry the batch size first; an unusual batch tells them apart.
    batch = 7
    runner._resize(batch)
    interpreter = runner._interpreter
    tensors, zeros, total = {}, 0, 0
    for detail in interpreter.get_tensor_details():
        shape = detail["shape"]
        if len(shape) < 2 or shape[0] == batch:
            continue
        try:
            values = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue
        tensors[detail["name"]] = float(np.mean(values == 0))
        zeros += int(np.sum(values == 0))
        total += values.size
    return {"tensors": tensors, "overall": zeros / total if total else 0.0}


def evaluate_tflite(
    model,
    x,
    y=None,
    reference_logits=None,
    latency_samples: int = 200,
    num_threads: int = 1,
) -> dict:
    """Runs a `.tflite` model and reports accuracy, size and latency.

    Args:
        model: Path to a `.tflite` file, or its bytes.
        x: Test inputs (float, as the Keras model takes them).
        y: Sparse test labels; gives `accuracy`.
        reference_logits: Outputs of a reference (the Keras student or the
            teacher) on `x`; gives `agreement`, the top-1 match rate.
        latency_samples: Samples timed one by one for latency (0 skips).
        num_threads: Interpreter threads.

    Returns:
        A dict with `size_bytes`, `gzip_size_bytes`, `latency_ms_median`,
        `latency_ms_p95`, and `accuracy` / `agreement` when asked for.

    Example:
        >>> report = evaluate_tflite("student_int8.tflite", x_test, y_test)
    """
    runner = TFLiteModel(model, num_threads=num_threads)
    if y is not None and len(y) != len(x):
        raise ValueError(
            f"Invalid value for argument `y`: it has {len(y)} labels for {len(x)} "
            "inputs. Pass one label per input."
        )
    outputs = runner.predict(x)
    report = {
        "size_bytes": len(runner.content),
        "gzip_size_bytes": gzip_size(runner.content),
    }
    if y is not None:
        report["accuracy"] = float(np.mean(np.argmax(outputs, -1) == np.asarray(y).reshape(-1)))
    if reference_logits is not None:
        report["agreement"] = float(
            np.mean(np.argmax(outputs, -1) == np.argmax(np.asarray(reference_logits), -1))
        )
    if latency_samples:
        timings = runner.latency_ms(x, samples=latency_samples)
        report["latency_ms_median"] = float(np.median(timings))
        report["latency_ms_p95"] = float(np.percentile(timings, 95))
    return report


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


@contextlib.contextmanager
def _quiet_absl():
    # The converter logs through absl: a warning that the frozen-constant
    # path is deprecated (kdistill chooses it on purpose) and INFO chatter.
    from absl import logging as absl_logging

    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(previous)


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


def _read_flatbuffer(model) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        content = bytes(model)
    else:
        path = str(model)
        try:
            with open(path, "rb") as f:
                content = f.read()
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"No TFLite file at {path!r}. Export one with "
                "kdistill.export.to_tflite(student, path)."
            ) from error
    if len(content) < 8 or content[4:8] != _TFLITE_IDENTIFIER:
        raise ValueError(
            f"The TFLite model {_describe(model)} is not a TFLite flatbuffer (it is "
            f"{len(content)} bytes without the 'TFL3' identifier): the file is "
            "corrupt or truncated, or not a .tflite file. Export it again with "
            "kdistill.export.to_tflite."
        )
    return content


def _describe(model) -> str:
    return "given as bytes" if isinstance(model, (bytes, bytearray)) else repr(str(model))
