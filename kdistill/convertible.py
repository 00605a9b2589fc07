"""Making any Keras model a graph the TFLite converter turns into builtins.

Two kinds of student need a different graph than the one they train with:

- A mixed-precision model (`mixed_float16`, `mixed_bfloat16`) computes in
  half precision, which the converter refuses; `float32_copy` rebuilds the
  same architecture under the float32 policy with the same weights.
- A recurrent model (LSTM, GRU) runs a loop whose TensorList ops lower to
  TFLite builtins only when every shape in it is static; `fixed_batch` gives
  the serving signature a batch size of 1, and refuses a sequence of unknown
  length with the change to make.
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
        inner = getattr(layer, "layer", None)  # Bidirectional, TimeDistributed
        if isinstance(inner, keras.layers.Layer):
            stack.append(inner)
    return found


def computes_in_half(model) -> bool:
    """Whether a layer of `model` computes in float16 or bfloat16."""
    return any(str(getattr(layer, "compute_dtype", "")) in _HALF for layer in layers(model))


def float32_copy(model):
    """`model` itself, or for mixed precision a float32 copy with its weights.

    The copy has the same architecture, built under the float32 policy (the
    global policy is set back afterwards, also on error).

    Raises:
        ValueError: When the model cannot be rebuilt from its config (a
            subclassed model without `get_config`), with what to do.
    """
    if not computes_in_half(model):
        return model
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = keras.models.clone_model(model, clone_function=_float32_layer)
        copy.set_weights(model.get_weights())
    except (TypeError, ValueError, NotImplementedError) as error:
        raise ValueError(
            f"The model {model.name!r} computes in half precision (mixed precision), which "
            "TFLite cannot convert, and kdistill could not rebuild it in float32 "
            f"({type(error).__name__}: {str(error)[:300]}). Build the same model under "
            'keras.mixed_precision.set_global_policy("float32"), copy the weights over '
            "with set_weights(model.get_weights()), and export that."
        ) from error
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return copy


def fixed_batch(model, specs) -> int | None:
    """1 for a model with a recurrent layer (its sequence length checked), else None.

    Raises:
        ValueError: When a recurrent layer runs over sequences of unknown
            length, naming the layer and the fix.
    """
    recurrent = [layer for layer in layers(model) if isinstance(layer, keras.layers.RNN)]
    if not recurrent:
        return None
    unknown = [s for s in specs if any(d is None for d in s.shape[1:])]
    if unknown:
        layer = recurrent[-1]
        spec = unknown[0]
        raise ValueError(
            f"The {type(layer).__name__} layer {layer.name!r} runs over sequences of "
            f"unknown length (the model input {spec.name!r} has shape "
            f"{tuple(spec.shape)}), which TFLite's built-in ops cannot run. Build the "
            "model with a fixed sequence length, e.g. keras.Input((64,)) for 64 token "
            "ids (pad or cut the sequences to it), copy the weights over, and export that."
        )
    return 1


def _float32_layer(layer):
    config = _float32_config(layer.get_config())
    return layer.__class__.from_config(config)


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
