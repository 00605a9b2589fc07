"""Argument checks shared by every kdistill module.

Each check raises an error that names the argument, the value received and
what is expected, in the form Keras uses::

    Invalid value for argument `temperature`. Expected a positive number.
    Received: temperature=0
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from kdistill import backend, outputs


def _invalid(argument: str, expected: str, value: Any) -> str:
    return (
        f"Invalid value for argument `{argument}`. Expected {expected}. "
        f"Received: {argument}={value!r}"
    )


def check_number(value: Any, argument: str) -> float:
    """Returns `value` as a finite float, or raises naming `argument`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(_invalid(argument, "a number", value))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(_invalid(argument, "a finite number", value))
    return value


def check_positive(value: Any, argument: str) -> float:
    """Returns `value` as a float if it is a positive number.

    Example:
        >>> check_positive(4, "temperature")
        4.0
    """
    value = check_number(value, argument)
    if value <= 0:
        raise ValueError(_invalid(argument, "a positive number", value))
    return value


def check_non_negative(value: Any, argument: str) -> float:
    """Returns `value` as a float if it is a number >= 0."""
    value = check_number(value, argument)
    if value < 0:
        raise ValueError(_invalid(argument, "a number >= 0", value))
    return value


def check_unit_interval(value: Any, argument: str) -> float:
    """Returns `value` as a float if it lies in [0, 1].

    Example:
        >>> check_unit_interval(0.1, "alpha")
        0.1
    """
    value = check_number(value, argument)
    if not 0.0 <= value <= 1.0:
        raise ValueError(_invalid(argument, "a number in [0, 1]", value))
    return value


# The softening temperatures kdistill accepts. Above 1e4 the softened
# distributions are uniform to within 1e-4 for logits of ordinary size, and
# T^2 * KL is, to within its rounding, its limit: the mean squared difference
# of the centred logits over two, which `LogitMSE` computes directly. The loss
# is tested against a float64 reference up to 1e4. Below 0.01 the softened
# distribution is one-hot for any logit gap above 0.2: a hard label.
TEMPERATURE_RANGE = (0.01, 1e4)


def check_temperature(value: Any, argument: str = "temperature") -> float:
    """Returns `value` as a float if it is a temperature in `TEMPERATURE_RANGE`.

    Example:
        >>> check_temperature(4)
        4.0
    """
    value = check_positive(value, argument)
    low, high = TEMPERATURE_RANGE
    if not low <= value <= high:
        raise ValueError(
            _invalid(argument, f"a number in [{low}, {high}]", value)
            + ". Above it soft targets are uniform and the loss is logit matching "
            "(use kdistill.losses.LogitMSE); below it they are hard labels."
        )
    return value


def check_integer(value: Any, argument: str, minimum: int = 0) -> int:
    """Returns `value` if it is an integer >= `minimum` (booleans are refused).

    Example:
        >>> check_integer(3, "epochs", minimum=1)
        3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(_invalid(argument, f"an integer >= {minimum}", value))
    return int(value)


_OTHER_SWITCH = (
    "kdistill is running on Keras 3, so it needs Keras 3 models. To work with "
    "tf_keras models instead, set TF_USE_LEGACY_KERAS=1 in the environment "
    "before TensorFlow is imported (for example on the command line: "
    "TF_USE_LEGACY_KERAS=1 python train.py)."
    if not backend.LEGACY_KERAS
    else "kdistill is running on tf_keras (TF_USE_LEGACY_KERAS is set), so it "
    "needs tf_keras models. Unset TF_USE_LEGACY_KERAS before TensorFlow is "
    "imported to work with Keras 3 models, or build the model with tf_keras."
)


def check_model(model, argument: str) -> None:
    """Raises a clear error unless `model` is a model of the Keras in use.

    Args:
        model: The object passed by the user.
        argument: The argument's name, used in the message (e.g. "teacher").

    Raises:
        TypeError: `model` is not a Keras model, or belongs to the other Keras.

    Example:
        >>> from kdistill import backend, validation
        >>> m = backend.keras.Sequential([backend.keras.layers.Dense(2)])
        >>> validation.check_model(m, "student")
    """
    if isinstance(model, backend.keras.Model):
        return
    module = type(model).__module__ or ""
    if module.startswith(("keras", "tf_keras", "tensorflow")) and hasattr(model, "layers"):
        raise TypeError(
            f"Invalid value for argument `{argument}`: it is a model of the "
            f"other Keras ({type(model).__module__}.{type(model).__name__}). " + _OTHER_SWITCH
        )
    raise TypeError(
        f"Invalid value for argument `{argument}`. Expected a "
        f"{backend.KERAS_NAME}.Model. Received: {argument} of type "
        f"{type(model).__name__}."
    )


def check_choice(value: Any, argument: str, choices) -> Any:
    """Returns `value` if it is one of `choices`, else lists the valid ones."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(_invalid(argument, f"one of {valid}", value))
    return value


def shapes_compatible(a, b) -> bool:
    """Whether two static shapes agree wherever both dimensions are known."""
    a, b = tuple(a), tuple(b)
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def check_same_shape(teacher_shape, student_shape, what: str) -> None:
    """Raises if two static shapes differ where both are known.

    Args:
        teacher_shape: A shape (tuple or TensorShape); None entries are unknown.
        student_shape: The other shape.
        what: What is compared, for the message (e.g. "outputs").
    """
    t = tuple(teacher_shape)
    s = tuple(student_shape)
    if not shapes_compatible(t, s):
        raise ValueError(
            f"Teacher and student {what} have different shapes: teacher "
            f"{_fmt(t)} and student {_fmt(s)}. Distillation compares them "
            "element by element, so give the student the same output layer "
            "size as the teacher (the same number of classes)."
        )


def check_pair(teacher, student) -> None:
    """Raises a clear error unless `teacher` can distil into `student`.

    The two must be separate models that share no layers, take inputs of the
    same shape, and have the same outputs (count, names and shapes).

    Args:
        teacher: A Keras model (already checked with `check_model`).
        student: Another Keras model.

    Example:
        >>> validation.check_pair(teacher, student)  # raises if they do not fit
    """
    check_separate_models(teacher, student)
    check_input_shapes(teacher, student)
    check_outputs(teacher, student)


def check_separate_models(teacher, student) -> None:
    """Raises if `student` is `teacher`, or shares variables with it.

    The Distiller freezes the teacher, which would freeze shared layers too.
    """
    if teacher is student:
        raise ValueError(
            "Invalid value for argument `student`. Expected a model separate from "
            "`teacher`. Received: the same object as `teacher`. Build a separate "
            "(usually smaller) student model; to start from the teacher's weights "
            "use keras.models.clone_model and set_weights."
        )
    teacher_ids = {id(v) for v in _variables(teacher)}
    shared = [v.name for v in _variables(student) if id(v) in teacher_ids]
    # Layers too, for models whose weights do not exist yet; two models built
    # on one keras.Input share its InputLayer, which holds no weights.
    teacher_layers = {id(layer) for layer in teacher.layers}
    shared += [
        layer.name
        for layer in student.layers
        if id(layer) in teacher_layers and not isinstance(layer, backend.keras.layers.InputLayer)
    ]
    if shared:
        raise ValueError(
            "Invalid value for argument `student`. Expected a model with its own "
            "layers. Received: a model that shares layers with `teacher` (variables "
            f"or layers {sorted(set(shared))[:4]}). The Distiller freezes the teacher, "
            "which would freeze those student layers too. Give the student its own layers "
            "(keras.models.clone_model copies a model)."
        )


def _variables(model) -> list:
    """A model's variables; [] for a tf_keras model whose weights do not exist
    yet (a Sequential without an Input, never called: it builds on first data)."""
    try:
        return list(model.weights)
    except ValueError:
        return []


def static_shape(model, attribute: str):
    """The static shape of a model's only input or output, else None.

    Args:
        model: A Keras model.
        attribute: "inputs" or "outputs".

    Returns:
        A tuple (None for unknown dimensions), or None when the model has no
        layer graph or several tensors under `attribute`.
    """
    tensors = getattr(model, attribute, None)
    try:
        if tensors and len(tensors) == 1:
            return tuple(tensors[0].shape)
    except (AttributeError, ValueError, TypeError):
        pass
    return None


def check_input_shapes(teacher, student) -> None:
    """Raises if teacher and student take inputs of different static shapes."""
    t, s = static_shape(teacher, "inputs"), static_shape(student, "inputs")
    if t is None or s is None:
        return
    if not shapes_compatible(t, s):
        raise ValueError(
            "Invalid value for argument `student`. Expected inputs of the teacher's "
            f"shape {t}. Received: a student taking inputs of shape {s} (teacher "
            "and student take inputs of different shapes). Both models see the "
            "same batch, so give the student the teacher's input shape (add a "
            "Reshape or Resizing layer inside the student if it needs another)."
        )


def check_outputs(teacher, student) -> None:
    """Raises unless teacher and student have the same outputs: as many,
    with the same keys for dict outputs, and of the same static shape."""
    t_names, s_names = outputs.names(teacher), outputs.names(student)
    if len(t_names) != len(s_names):
        raise ValueError(
            "Invalid value for argument `student`. Expected the teacher's outputs, "
            "matched one to one. Received: teacher and student have different "
            f"numbers of outputs: teacher {len(t_names)} ({', '.join(t_names)}), "
            f"student {len(s_names)} ({', '.join(s_names)}). Give the student the "
            "teacher's outputs."
        )
    if isinstance(outputs.structure(teacher), dict) and t_names != s_names:
        raise ValueError(
            "Invalid value for argument `student`. Expected outputs keyed as the "
            f"teacher's, {t_names}. Received: student outputs keyed {s_names}. Use "
            "the same keys in both models."
        )
    t, s = static_shape(teacher, "outputs"), static_shape(student, "outputs")
    if t is not None and s is not None:
        check_same_shape(t, s, "outputs")


def check_output_count(values, expected: int, role: str) -> None:
    """Raises if a model returned other than `expected` outputs when called.

    A model without a layer graph shows how many outputs it has only when
    called: refuse more than were paired up, instead of distilling the first.

    Args:
        values: The flat list of tensors the model returned.
        expected: How many were paired up before training.
        role: "teacher" or "student", for the message.
    """
    if len(values) != expected:
        raise ValueError(
            f"The {role} returned {len(values)} outputs, but kdistill expected "
            f"{expected}. kdistill pairs the outputs of teacher and student before "
            "training, which it can do only for models with a layer graph: build a "
            "model with several outputs as a functional model, "
            "keras.Model(inputs, [output_1, output_2])."
        )


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
