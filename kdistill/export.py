"""Export a student for deployment: `.tflite` and SavedModel files.

`to_tflite` converts a Keras model to a TFLite (LiteRT) flatbuffer with
optional quantization; `to_saved_model` writes a SavedModel for TensorFlow
Serving and GPUs. Every file is written atomically. Running and measuring the
files (`TFLiteModel`, `evaluate_tflite`) is `kdistill.tflite`'s job.

Any student exports: each of several inputs keeps its name, shape and dtype
(`kdistill.input_specs`); a mixed-precision student is exported as a float32
copy and a recurrent one with a fixed-shape signature (`kdistill.convertible`).
Representative data is checked first (finite, non-empty, of the model's
shapes), and an "int8" file that came out with float ops is an error.

Language models and other per-position outputs: a keras-hub `CausalLM`
(`preprocessor=None`) or a functional model taking `token_ids` and
`padding_mask` exports with its int32 inputs and its logits per position, all
as TFLite builtins that LiteRT runs (no TensorFlow/Flex ops: checked for
`GPT2CausalLM` with TensorFlow 2.21). Inputs of unknown length stay open and
LiteRT resizes them per call, or `sequence_length=N` fixes them: needed where
an op on an open length has no builtin (`mask[..., None]` is a StridedSlice),
for recurrent layers, and for a fixed generation window. keras-hub's
transformers do not convert to "int8" (LayerNormalization's NEG has no int8
kernel; the error names the layer): choose "dynamic" or "float16".

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
import os
import re

import numpy as np

from kdistill import atomic, convertible, input_specs, quiet, validation
from kdistill.backend import keras, tf

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")


def convert(
    model,
    quantization: str = "none",
    representative_data=None,
    int8_io: bool = False,
    select_tf_ops: bool = False,
    calibration_samples: int = 500,
    float32_copy: bool = True,
    sequence_length: int | None = None,
) -> bytes:
    """Converts a Keras model to a TFLite flatbuffer.

    Every model input becomes a file input with its own name, shape and dtype
    (integer token ids stay integer). A model that computes in float16 or
    bfloat16 (mixed precision) is exported as a float32 copy with the same
    weights. A recurrent model (LSTM, GRU) needs a fixed sequence length; its
    file has a batch size of 1 so the loop lowers to TFLite's built-in ops
    (for "int8", its layers are unrolled instead: any batch size).

    Args:
        model: A Keras 3 or tf_keras model (strip tfmot wrappers first).
        quantization: One of "none", "dynamic", "float16", "int8".
        representative_data: Typical inputs (an array, a list in the model's
            input order, or a dict keyed by input name); required for "int8".
        int8_io: For "int8", make the float input and output tensors int8 too
            (default float32 in and out, quantized inside).
        select_tf_ops: Allow TensorFlow ops that TFLite lacks (SELECT_TF_OPS;
            the runtime then needs the Flex delegate).
        calibration_samples: How many representative samples to calibrate on.
        float32_copy: Export a mixed-precision model as a float32 copy
            (default); False converts it as it is.
        sequence_length: Fix every input of unknown length (shape
            `(batch, None)`: token ids, a padding mask) to this many
            positions. Without it such inputs stay open and LiteRT resizes
            them per call; a phone's GPU delegate, a recurrent layer or a
            fixed generation window wants them fixed.

    Returns:
        The flatbuffer bytes.

    Raises:
        ValueError: For representative data that does not fit the model (the
            input, index or shape is named), a recurrent layer over sequences
            of unknown length, or an "int8" file that came out with float
            tensors (it is not returned).
    """
    check_quantization(quantization, representative_data)
    validation.check_integer(calibration_samples, "calibration_samples", minimum=1)
    specs, structure = _specs(model, representative_data, sequence_length)
    samples = check_representative_data(model, representative_data, sequence_length)
    if sequence_length is not None:
        _check_runs_at_length(model, specs, structure, sequence_length)
    model, batch = convertible.prepare(model, specs, quantization, float32_copy)
    function = _serving_function(model, specs, structure, batch)
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
        converter.representative_dataset = _calibration(samples, calibration_samples, batch)
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    if select_tf_ops:
        ops = ops + [tf.lite.OpsSet.SELECT_TF_OPS]
    converter.target_spec.supported_ops = ops
    try:
        with quiet.native_logs():
            flatbuffer = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises many kinds
        raise _conversion_error(error, select_tf_ops, specs) from error
    if quantization == "int8":
        _check_int8(flatbuffer)
    return flatbuffer


def check_representative_data(
    model, representative_data, sequence_length: int | None = None
) -> list | None:
    """Checks typical inputs against `model`'s inputs; one array per input.

    Args:
        model: The Keras model to export.
        representative_data: An array, a list in the model's input order, a
            dict keyed by input name (Python lists are read as arrays), or None.
        sequence_length: The fixed length of the file's open inputs, if any
            (see `convert`): the data must have it.

    Returns:
        The checked arrays in the model's input order, or None for None.

    Raises:
        ValueError: For an empty, ragged, non-finite or misshapen input,
            naming the input, the first offending index or both shapes.
    """
    if representative_data is None:
        return None
    specs, _ = _specs(model, representative_data, sequence_length)
    return input_specs.arrange(representative_data, specs, "representative_data")


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
        representative_data: Typical inputs (array, list or dict); required
            for "int8".
        **kwargs: `int8_io`, `select_tf_ops`, `calibration_samples`,
            `float32_copy`, `sequence_length` (see `convert`).

    Returns:
        A dict with `path`, `quantization`, `size_bytes`, `gzip_size_bytes`.

    Example:
        >>> info = to_tflite(student, "student_int8.tflite", quantization="int8",
        ...                  representative_data=x_train[:500])
    """
    check_output_path(path, "path")
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

    The `serving_default` signature takes the model's inputs (by name) and
    returns its output as "output", for TensorFlow Serving and GPU inference.

    Returns:
        The path.
    """
    specs, structure = input_specs.of_model(_check_model(model))
    function = _serving_function(model, specs, structure, None)
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda *args: {"output": function(*args)})
    signature = module.serve.get_concrete_function(*_tensor_specs(specs, None))
    with atomic.directory(path) as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": signature})
    return path


def check_output_path(path, argument: str) -> str:
    """Raises one clear line for a file path that is a directory or under a file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(
            f"Invalid value for argument `{argument}`: {path!r} is a directory. Expected "
            f"a file path, e.g. {os.path.join(path, 'student.tflite')!r}."
        )
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise ValueError(
            f"Invalid value for argument `{argument}`: {path!r} lies under {parent!r}, "
            "which is a file, not a directory. Choose a path in a directory."
        )
    return path


def gzip_size(data: bytes) -> int:
    """Size of `data` after gzip at level 9: what a download really costs."""
    return len(gzip.compress(data, compresslevel=9))


# ---------------------------------------------------------------------------


def _check_model(model):
    if not isinstance(model, (keras.Model, keras.layers.Layer)):
        raise TypeError(
            "Invalid value for argument `model`. Expected a Keras model (for a "
            f"Distiller pass distiller.student). Received: {type(model).__name__}"
        )
    return model


def _specs(model, sample, sequence_length):
    specs, structure = input_specs.of_model(_check_model(model), sample)
    if sequence_length is not None:
        specs = input_specs.with_sequence_length(specs, sequence_length)
    return specs, structure


def _check_runs_at_length(model, specs, structure, sequence_length) -> None:
    """One call on zeros of the fixed shape: a length the model cannot take
    (past a position embedding's end, say) fails here in one line, not deep
    in the converter."""
    if any(d is None for s in specs for d in s.shape[1:]):
        return
    zeros = [np.zeros((1, *s.shape[1:]), s.dtype) for s in specs]
    try:
        model(tf.nest.pack_sequence_as(structure, zeros), training=False)
    except Exception as error:  # noqa: BLE001 - any layer may refuse the length
        reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise ValueError(
            f"Invalid value for argument `sequence_length`: the model does not run on "
            f"{sequence_length} positions ({type(error).__name__}: {reason}). Choose the "
            "length of the data it is used on, at most the positions it can embed (a "
            "keras-hub model's max_sequence_length)."
        ) from None


def _tensor_specs(specs, batch):
    return [tf.TensorSpec((batch, *s.shape[1:]), s.dtype, name=s.name) for s in specs]


def _serving_function(model, specs, structure, batch):
    """A concrete function taking one named tensor per model input, in order."""

    def serve(*inputs):
        return model(tf.nest.pack_sequence_as(structure, list(inputs)), training=False)

    return tf.function(serve).get_concrete_function(*_tensor_specs(specs, batch))


def _calibration(samples, count, batch):
    samples = [a[:count] for a in samples]
    step = batch or 1

    def representative():
        # Fixed-batch files (recurrent models) calibrate on whole batches.
        for i in range(0, len(samples[0]) - step + 1, step):
            yield [a[i : i + step] for a in samples]

    return representative


_CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE", "CAST")


def _check_int8(flatbuffer: bytes) -> None:
    # The converter writes a float file without a word when calibration gives
    # it nothing to work with: refuse a file that is not what was asked. Only
    # the ops that move values into or out of int8 may touch float tensors.
    from kdistill import tflite  # runs files; imports this module

    with quiet.native_logs():
        interpreter = tflite._interpreter_class()(model_content=flatbuffer)
    floats = {
        d["index"]: d["name"]
        for d in interpreter.get_tensor_details()
        if np.issubdtype(d["dtype"], np.floating)
    }
    for op in interpreter._get_ops_details():
        if op["op_name"] in _CONVERSION_OPS:
            continue
        touched = [floats[i] for i in (*op["inputs"], *op["outputs"]) if i in floats]
        if touched:
            # The op's output tensor carries the Keras layer's path in its name.
            where = floats.get(op["outputs"][0], touched[0]) if len(op["outputs"]) else touched[0]
            raise ValueError(
                f'The quantization="int8" conversion left the {op["op_name"]} op on float '
                f"tensors (in {where!r}), so the file is not an int8 model and was "
                "not written. Either the representative data gave the calibrator no "
                "ranges (pass a few hundred finite training inputs), or TFLite has no "
                f"int8 kernel for {op['op_name']} here (e.g. a masked LSTM): then choose "
                'quantization="dynamic" or "float16".'
            )


def _conversion_error(error, select_tf_ops, specs) -> Exception:
    message = str(error)
    listed = re.search(r"TF Select ops: ([\w, ]+)", message)
    if listed:
        ops = sorted({op.strip() for op in listed.group(1).split(",") if op.strip()})
    else:
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither", message)))
    if "TensorList" in message:
        return ValueError(
            "The TFLite converter cannot lower the model's loop (a recurrent layer such "
            "as LSTM or GRU) to TFLite builtins, because a tensor shape in it is not "
            "fixed. Build the model with a fixed sequence length, e.g. "
            "keras.Input((64,)), and without other unknown dimensions.\nConverter "
            "message: " + message[:2000]
        )
    if not select_tf_ops and ("not supported" in message or ops):
        names = ", ".join(ops) if ops else "(see the converter message below)"
        open_length = [s.name for s in specs if len(s.shape) >= 2 and s.shape[1] is None]
        # Ops on a tensor of unknown length (a slice, a reshape) often lower to
        # builtins once the length is known.
        length_hint = (
            f"The inputs {open_length} have an unknown length: first try a fixed one, "
            "sequence_length=N (the positions of your data). "
            if open_length
            else ""
        )
        return ValueError(
            f"The TFLite converter cannot lower these TensorFlow ops to TFLite "
            f"builtins: {names}. {length_hint}Replace them in the model, or convert with "
            "select_tf_ops=True (adds tf.lite.OpsSet.SELECT_TF_OPS; the app then "
            "needs the TFLite Flex delegate).\nConverter message: " + message[:2000]
        )
    return RuntimeError(f"TFLite conversion failed: {message[:4000]}")
