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

import os
import re
import time
import warnings

import numpy as np

from kdistill import data_contract, input_specs, label_checks, quiet, validation
from kdistill.backend import tf
from kdistill.export import gzip_size
from kdistill.input_specs import InputSpec

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
    callers pass and receive float arrays whatever the quantization. A file
    with TensorFlow (Flex) ops, from `select_tf_ops=True`, is run by
    TensorFlow's interpreter where that one has the Flex delegate linked in
    (LiteRT's Python wheel has none); elsewhere it is refused with the fix. Inputs
    are matched to the file's input tensors by name: pass an array (one
    input), a list in the model's input order, or a dict keyed by input name.
    A file with a fixed batch size (recurrent models) is run in batches of
    that size.

    Args:
        model: A path to a `.tflite` file or its bytes.
        num_threads: Interpreter threads (1 for comparable latency).
    """

    def __init__(self, model, num_threads: int = 1):
        self.content = _read_flatbuffer(model)
        self._interpreter = _loaded(self.content, num_threads, model)
        output_count = len(self._interpreter.get_output_details())
        if output_count != 1:
            raise ValueError(
                f"The TFLite model {_describe(model)} has {output_count} outputs; "
                "TFLiteModel runs models with one. For a model with several "
                "outputs, export a model of the output to evaluate "
                "(keras.Model(model.input, model.outputs[0]))."
            )
        self._inputs = self._interpreter.get_input_details()
        self._output = self._interpreter.get_output_details()[0]
        batch = int(self._inputs[0]["shape_signature"][0])
        self.fixed_batch = batch if batch > 0 else None
        self.input_specs = [
            InputSpec(
                _input_name(d["name"]),
                (None, *(int(n) if n > 0 else None for n in d["shape_signature"][1:])),
                np.dtype(np.float32) if _quantized(d) else np.dtype(d["dtype"]),
            )
            for d in self._inputs
        ]

    @property
    def input_dtype(self):
        """The numpy dtype of the first input tensor (int8 for int8_io files)."""
        return self._inputs[0]["dtype"]

    @property
    def input_names(self) -> list[str]:
        """The file's input names, in its input order."""
        return [spec.name for spec in self.input_specs]

    def _resize(self, batch: int, arrays=None) -> None:
        """Sets the batch size, and the sample shape of inputs whose file leaves
        it open (a sequence of any length, say) to that of `arrays`."""
        shapes = [
            [
                batch,
                *(
                    a.shape[1:]
                    if a is not None and -1 in d["shape_signature"][1:]
                    else d["shape"][1:]
                ),
            ]
            for d, a in zip(self._inputs, arrays or [None] * len(self._inputs))
        ]
        if self.fixed_batch is None and shapes != [list(d["shape"]) for d in self._inputs]:
            for detail, shape in zip(self._inputs, shapes):
                self._interpreter.resize_tensor_input(detail["index"], shape)
            self._interpreter.allocate_tensors()
            self._inputs = self._interpreter.get_input_details()
            self._output = self._interpreter.get_output_details()[0]

    def _set_inputs(self, arrays) -> None:
        for detail, array in zip(self._inputs, arrays):
            self._interpreter.set_tensor(detail["index"], _quantize(array, detail))

    def _dequantize(self, y):
        if self._output["dtype"] in (np.int8, np.uint8):
            scale, zero_point = self._output["quantization"]
            return (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)

    def arrange(self, x, argument: str = "x") -> list[np.ndarray]:
        """Checks `x` against the file's inputs; one array per input, in order."""
        return input_specs.arrange(x, self.input_specs, argument)

    def _run(self, arrays) -> np.ndarray:
        count = len(arrays[0])
        if self.fixed_batch is None:
            self._resize(count, arrays)
            self._set_inputs(arrays)
            self._interpreter.invoke()
            return self._dequantize(self._interpreter.get_tensor(self._output["index"]))
        step, outputs = self.fixed_batch, []
        for i in range(0, count, step):
            chunk = [_padded(a[i : i + step], step) for a in arrays]
            self._set_inputs(chunk)
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output["index"])
            outputs.append(self._dequantize(output)[: min(step, count - i)])
        return np.concatenate(outputs)

    def invoke(self, x) -> np.ndarray:
        """Runs one batch and returns float outputs."""
        return self._run(self.arrange(x))

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """Returns float outputs for all of `x`, in batches."""
        arrays = self.arrange(x)
        return np.concatenate(
            [
                self._run([a[i : i + batch_size] for a in arrays])
                for i in range(0, len(arrays[0]), batch_size)
            ]
        )

    def latency_ms(self, x, samples: int = 200, warmup: int = 10) -> np.ndarray:
        """Per-sample latencies in ms, batch size 1, one call per sample."""
        validation.check_integer(samples, "samples", minimum=1)
        arrays = self.arrange(x)
        self._resize(1, arrays)
        step = self.fixed_batch or 1
        timings = []
        for i in range(warmup + samples):
            j = (i * step) % len(arrays[0])
            sample = [
                _quantize(_padded(a[j : j + step], step), d) for a, d in zip(arrays, self._inputs)
            ]
            start = time.perf_counter()
            for detail, value in zip(self._inputs, sample):
                self._interpreter.set_tensor(detail["index"], value)
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
    batch = runner.fixed_batch or 7
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
    sample_weight=None,
) -> dict:
    """Runs a `.tflite` model and reports accuracy, size and latency.

    A model with an output per position (a language model's logits of shape
    `(n, positions, vocabulary)`, a token classifier, a segmentation head)
    is scored per position: `y` then holds one class id per position, and
    accuracy and agreement are the shares of positions right. A padding mask
    passed as `sample_weight` leaves the padded positions out.

    Args:
        model: Path to a `.tflite` file, or its bytes.
        x: Test inputs, as the Keras model takes them: an array, a list in
            the model's input order, or a dict keyed by input name.
        y: Integer class ids, one per output row: shape `(n,)` for a
            classifier, `(n, positions...)` for per-position outputs; gives
            `accuracy`. (For one-hot labels pass `np.argmax(y, -1)`.)
        reference_logits: Outputs of a reference (the Keras student or the
            teacher) on `x`; gives `agreement`, the top-1 match rate.
        latency_samples: Samples timed one by one for latency; 0 skips the
            timing (no latency keys in the report).
        num_threads: Interpreter threads.
        sample_weight: Weights of shape `(n,)` or, for per-position
            outputs, `(n, positions...)` (e.g. `x["padding_mask"]`):
            accuracy and agreement become weighted means, so a position of
            weight 0 counts for nothing.

    Returns:
        A dict with `size_bytes`, `gzip_size_bytes`, `latency_ms_median`,
        `latency_ms_p95`, and `accuracy` / `agreement` when asked for.

    Example:
        >>> report = evaluate_tflite("student_int8.tflite", x_test, y_test)
        >>> evaluate_tflite("lm.tflite", {"token_ids": ids, "padding_mask": mask},
        ...                 next_ids, sample_weight=mask)["accuracy"]
    """
    validation.check_integer(latency_samples, "latency_samples", minimum=0)
    runner = TFLiteModel(model, num_threads=num_threads)
    arrays = runner.arrange(x)
    outputs = runner.predict(arrays)
    report = {
        "size_bytes": len(runner.content),
        "gzip_size_bytes": gzip_size(runner.content),
    }
    weights = _weights(sample_weight, outputs.shape)
    predicted = np.argmax(outputs, -1)
    if y is not None:
        labels = _class_ids(y, outputs.shape)
        report["accuracy"] = _weighted_mean(predicted == labels, weights)
    if reference_logits is not None:
        reference = np.asarray(reference_logits)
        if reference.shape != outputs.shape:
            raise ValueError(
                "Invalid value for argument `reference_logits`: expected the reference "
                f"model's outputs on `x`, of shape {outputs.shape}. Received shape "
                f"{reference.shape}. Pass reference.predict(x)."
            )
        report["agreement"] = _weighted_mean(predicted == np.argmax(reference, -1), weights)
    if latency_samples:
        timings = runner.latency_ms(arrays, samples=latency_samples)
        report["latency_ms_median"] = float(np.median(timings))
        report["latency_ms_p95"] = float(np.percentile(timings, 95))
    return report


# ---------------------------------------------------------------------------


def _input_name(name: str) -> str:
    # Files from a SavedModel call their inputs "serving_default_<name>:0".
    return name.split(":")[0].removeprefix("serving_default_")


def _quantized(detail) -> bool:
    return detail["dtype"] in (np.int8, np.uint8) and detail["quantization"][0] != 0


def _quantize(x: np.ndarray, detail) -> np.ndarray:
    if _quantized(detail):
        scale, zero_point = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        x = np.clip(np.round(x / scale + zero_point), info.min, info.max)
    return x.astype(detail["dtype"])


def _padded(array: np.ndarray, size: int) -> np.ndarray:
    if len(array) == size:
        return array
    return np.concatenate([array, np.repeat(array[-1:], size - len(array), axis=0)])


def _class_ids(y, output_shape) -> np.ndarray:
    classes = output_shape[-1]
    expected = tuple(output_shape[:-1])
    if len(expected) == 1:  # a classifier: one label per sample
        y = label_checks.check_class_labels(y, classes, "y")
        if y.ndim == 2:
            y = y[:, 0]
    else:
        y = data_contract.as_array(y, "y")
        if y.shape == (*expected, 1):
            y = y[..., 0]
        if y.shape == tuple(output_shape):
            raise ValueError(
                f"Invalid value for argument `y`: the labels look one-hot (shape "
                f"{y.shape}), but class indices are expected, one per position. Pass "
                "y.argmax(-1)."
            )
        if y.shape == expected:
            y = label_checks.check_class_labels(y.reshape(-1), classes, "y").reshape(expected)
    if y.shape != expected:
        per = "input" if len(expected) == 1 else "position"
        raise ValueError(
            f"Invalid value for argument `y`: it has shape {y.shape} for outputs of shape "
            f"{tuple(output_shape)}. Expected one integer class id per {per}, shape "
            f"{expected}."
        )
    return y.astype(np.int64)


def _weights(sample_weight, output_shape) -> np.ndarray | None:
    """Weights broadcastable against the argmax of outputs of `output_shape`."""
    if sample_weight is None:
        return None
    weights = label_checks.check_sample_weight(sample_weight, output_shape[0])
    rows = tuple(output_shape[:-1])
    if weights.shape == (*rows, 1) and len(rows) > 1:
        weights = weights[..., 0]
    if weights.shape == rows:
        return weights.astype(np.float64)
    if weights.shape in ((rows[0],), (rows[0], 1)):  # one weight per sample
        return weights.reshape((rows[0],) + (1,) * (len(rows) - 1)).astype(np.float64)
    per_position = f", or one per position, shape {rows} (e.g. the padding mask)"
    raise ValueError(
        f"Invalid value for argument `sample_weight`: it has shape {weights.shape} for "
        f"outputs of shape {tuple(output_shape)}. Expected one weight per sample, shape "
        f"({rows[0]},){per_position if len(rows) > 1 else ''}."
    )


def _weighted_mean(correct: np.ndarray, weights) -> float:
    if weights is None:
        return float(np.mean(correct))
    weights = np.broadcast_to(weights, correct.shape)
    return float(np.sum(correct * weights) / np.sum(weights))


_SELECT_TF_OPS = "Select TensorFlow op"


def _loaded(content: bytes, num_threads: int, model):
    """An allocated interpreter for `content`: LiteRT's, or for a file with
    TensorFlow (Flex) ops, TensorFlow's where it has the Flex delegate."""
    try:
        return _allocated(_interpreter_class(), content, num_threads)
    except (ValueError, RuntimeError) as error:
        if _SELECT_TF_OPS not in str(error):
            raise ValueError(
                f"The TFLite model {_describe(model)} could not be loaded ({error}). The "
                "file is corrupt or truncated: export it again with kdistill.export.to_tflite."
            ) from error
    try:
        return _allocated(tf.lite.Interpreter, content, num_threads)
    except (ValueError, RuntimeError) as error:
        ops = ", ".join(sorted({op.decode() for op in re.findall(rb"Flex(\w+)", content)}))
        raise ValueError(
            f"The TFLite model {_describe(model)} holds TensorFlow ops that TFLite's "
            f"builtins lack (Flex ops: {ops or 'see the file'}), and "
            "neither LiteRT nor TensorFlow's interpreter here has the Flex delegate that "
            "runs them (an app needs the select-TF-ops library too). Export the model "
            "without select_tf_ops=True: for a sequence model, fix its length first "
            "(kdistill.export.to_tflite(model, path, sequence_length=...)); otherwise "
            "replace the ops in the model."
        ) from error


def _allocated(interpreter_class, content: bytes, num_threads: int):
    with quiet.native_logs(), warnings.catch_warnings():
        # The XNNPACK delegate announces itself; tf.lite.Interpreter warns of its end.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = interpreter_class(model_content=content, num_threads=num_threads)
        interpreter.allocate_tensors()
    return interpreter


def _read_flatbuffer(model) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        content = bytes(model)
    else:
        path = str(model)
        if os.path.isdir(path):
            raise ValueError(
                f"Invalid value for argument `model`: {path!r} is a directory. Expected "
                "a .tflite file (or its bytes)."
            )
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
