"""Making any Keras model a graph the TFLite converter turns into builtins.

Two kinds of student need a different graph than the one they train with
(`prepare` decides):

- A mixed-precision model (`mixed_float16`, `mixed_bfloat16`) computes in
  half precision, which the converter refuses; it is rebuilt with the same
  architecture under the float32 policy and the same weights.
- A recurrent model (LSTM, GRU) runs a loop whose TensorList ops lower to
  TFLite builtins only when every shape in it is static: its serving
  signature gets a batch size of 1, and a sequence of unknown length is
  refused with the change to make. For "int8" its recurrent layers are
  unrolled instead (TensorFlow's calibrator crashes on the loop).
"""

from __future__ import annotations

from kdistill.backend import keras

_HALF = ("float16", "bfloat16")


def layers(model) -> list:
    """`model` and every layer inside it, nested models and wrappers included."""
    found, stack = [], [model]
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack.extend(getattr(layer, "layers", None) or [])
        # Wrappers: TimeDistributed, and Bidirectional (Keras 3 keeps no `layer`).
        for attribute in ("layer", "forward_layer", "backward_layer"):
            inner = getattr(layer, attribute, None)
            if isinstance(inner, keras.layers.Layer):
                stack.append(inner)
    return found


def computes_in_half(model) -> bool:
    """Whether a layer of `model` computes in float16 or bfloat16."""
    return any(str(getattr(layer, "compute_dtype", "")) in _HALF for layer in layers(model))


def prepare(model, specs, quantization: str, float32_copy: bool = True):
    """The model to convert and the batch size of its serving signature.

    Args:
        model: The Keras model.
        specs: Its `InputSpec`s.
        quantization: The export's quantization mode.
        float32_copy: Rebuild a mixed-precision model in float32.

    Returns:
        `(model, batch)`: `model` itself or a rebuilt copy with its weights,
        and None (any batch size) or 1 (a recurrent model's loop).

    Raises:
        ValueError: When a recurrent layer runs over sequences of unknown
            length, or a model that needs rebuilding cannot be rebuilt.
    """
    half = float32_copy and computes_in_half(model)
    recurrent = [layer for layer in layers(model) if isinstance(layer, keras.layers.RNN)]
    if recurrent:
        _check_sequence_length(recurrent[-1], specs)
    # TensorFlow's int8 calibrator crashes the process on a recurrent loop; the
    # unrolled layers calibrate like any other ops.
    unroll = bool(recurrent) and quantization == "int8"
    if half or unroll:
        model = _rebuilt(model, half, unroll)
    return model, (1 if recurrent and not unroll else None)


def _rebuilt(model, half: bool, unroll: bool):
    reasons = [
        r for r, on in (("computes in half precision", half), ("is recurrent", unroll)) if on
    ]
    previous = keras.mixed_precision.global_policy()
    if half:
        keras.mixed_precision.set_global_policy("float32")
    try:
        copy = keras.models.clone_model(
            model, clone_function=lambda layer: _rebuilt_layer(layer, half, unroll)
        )
        copy.set_weights(model.get_weights())
    except (AttributeError, TypeError, ValueError, NotImplementedError) as error:
        raise ValueError(
            f"The model {model.name!r} {' and '.join(reasons)}, so kdistill exports a "
            "copy of it (float32 layers, unrolled for int8), but could not rebuild it "
            f"from its config ({type(error).__name__}: {str(error)[:300]}). Build the "
            "model as a functional or Sequential model (under the float32 policy: "
            'keras.mixed_precision.set_global_policy("float32")), copy the weights over '
            "with set_weights(model.get_weights()), and export that."
        ) from error
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return copy


def _check_sequence_length(layer, specs) -> None:
    unknown = [s for s in specs if any(d is None for d in s.shape[1:])]
    if unknown:
        spec = unknown[0]
        raise ValueError(
            f"The {type(layer).__name__} layer {layer.name!r} runs over sequences of "
            f"unknown length (the model input {spec.name!r} has shape "
            f"{tuple(spec.shape)}), which TFLite's built-in ops cannot run. Export it "
            "with a fixed sequence length, e.g. to_tflite(..., sequence_length=64) for "
            "64 token ids (pad or cut the sequences to it), or build the model with "
            "keras.Input((64,)), copy the weights over, and export that."
        )


def _rebuilt_layer(layer, half: bool, unroll: bool):
    config = layer.get_config()
    if half:
        config = _float32_config(config)
    if unroll:
        config = _unrolled_config(config)
        if isinstance(layer, keras.layers.RNN):
            config["unroll"] = True
    return layer.__class__.from_config(config)


def _unrolled_config(config):
    if isinstance(config, dict):
        config = {key: _unrolled_config(value) for key, value in config.items()}
        inner = config.get("config")
        if isinstance(inner, dict) and "unroll" in inner:
            inner["unroll"] = True
        return config
    if isinstance(config, list):
        return [_unrolled_config(value) for value in config]
    return config


def _float32_config(config):
    if isinstance(config, dict):
        return {
            key: "float32" if key == "dtype" and _is_half(value) else _float32_config(value)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    return config


def _is_half(dtype) -> bool:
    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name")
    return isinstance(dtype, str) and dtype.replace("mixed_", "") in _HALF
