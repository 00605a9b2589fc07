"""Run and measure `.tflite` files: outputs, accuracy, size, latency, sparsity.

`TFLiteModel` runs a file with the LiteRT interpreter on float inputs
(quantized inputs and outputs are handled through scale and zero point);
`evaluate_tflite` reports accuracy, teacher agreement, size and latency;
`weight_sparsity` counts the zeros a pruned model keeps after conversion.
Making the files is `kdistill.export`'s job.

Example:
    >>> from kdistill import export, tflite
    >>> export.to_tflite(student, "student.tflite", quantization="dynamic")
    >>> tflite.evaluate_tflite("student.tflite", x_test, y_test)
"""

from __future__ import annotations

import time

import numpy as np

from kdistill import quiet
from kdistill.backend import tf
from kdistill.export import gzip_size

_TFLITE_IDENTIFIER = b"TFL3"


def _interpreter_class():
    # LiteRT is TFLite's runtime; tf.lite.Interpreter is deprecated in TF 2.20+.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # platforms without a LiteRT wheel
        Interpreter = tf.lite.Interpreter
    return Interpreter


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
            with quiet.native_logs():  # the XNNPACK delegate announces itself
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
        """The numpy dtype of the model's input tensor (int8 for int8_io files)."""
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
