"""Prepares `Distiller.fit`'s and `Distiller.evaluate`'s arguments for Keras.

Before Keras sees them: positional arguments become keywords, Python lists
become arrays, `class_weight` with offline targets becomes sample weights,
the data (and `validation_data`) pass the `kdistill.data_contract` checks,
and `fit` gets a `StopOnNonFiniteLoss` callback.
"""

from __future__ import annotations

from kdistill import data_contract, targets, validation
from kdistill.backend import keras, tf

# `fit`'s arguments after `batch_size`, in order (the same in Keras 3 and tf_keras).
_FIT_ARGUMENTS = (
    "epochs",
    "verbose",
    "callbacks",
    "validation_split",
    "validation_data",
    "shuffle",
    "class_weight",
    "sample_weight",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
    "max_queue_size",  # tf_keras only, from here on
    "workers",
    "use_multiprocessing",
)


def for_fit(distiller, x, y, batch_size, args, kwargs) -> tuple:
    """Returns `(x, y, kwargs)` for `keras.Model.fit(x, y, batch_size, **kwargs)`.

    Args:
        distiller: The `Distiller` being fitted.
        x, y, batch_size: `fit`'s first arguments.
        args: `fit`'s further positional arguments, in `fit`'s order.
        kwargs: `fit`'s keyword arguments (updated in place and returned).
    """
    # kdistill.callbacks imports the distiller: import the callback when used.
    from kdistill.callbacks.non_finite_loss import StopOnNonFiniteLoss

    kwargs.update(zip(_FIT_ARGUMENTS, args))
    data_contract.check_fit_arguments(batch_size, kwargs.get("epochs", 1))
    x, y = _data_as_arrays(distiller, x, y)
    if kwargs.get("sample_weight") is not None:
        kwargs["sample_weight"] = _lists_as_arrays(kwargs["sample_weight"], "sample_weight")
    per_position = _per_position(distiller)
    if kwargs.get("class_weight") is not None and (
        per_position or targets.packs_teacher_outputs(x, y)
    ):
        x, y, kwargs["sample_weight"] = targets.with_class_weight(
            x, y, kwargs.get("sample_weight"), kwargs.pop("class_weight"), per_position
        )
    check_data(distiller, x, y, kwargs.get("sample_weight"), batch_size)
    kwargs["sample_weight"] = _weights_for_targets(y, kwargs.get("sample_weight"))
    validation_data = kwargs.get("validation_data")
    if isinstance(validation_data, (tuple, list)) and 2 <= len(validation_data) <= 3:
        with data_contract.renamed("validation_data"):
            check_data(distiller, *validation_data, *[None] * (3 - len(validation_data)), None)
        if len(validation_data) == 3:
            x_val, y_val, w_val = validation_data
            kwargs["validation_data"] = (x_val, y_val, _weights_for_targets(y_val, w_val))
    callbacks = kwargs.get("callbacks") or []
    if not isinstance(callbacks, keras.callbacks.CallbackList):  # a CallbackList is kept
        kwargs["callbacks"] = [*callbacks, StopOnNonFiniteLoss()]
    return x, y, kwargs


def for_evaluate(distiller, x, y, batch_size, sample_weight) -> tuple:
    """Returns `(x, y, sample_weight)` for `keras.Model.evaluate`, after
    `fit`'s checks."""
    data_contract.check_fit_arguments(batch_size, None)
    x, y = _data_as_arrays(distiller, x, y)
    check_data(distiller, x, y, sample_weight, batch_size)
    return x, y, _weights_for_targets(y, sample_weight)


def check_data(distiller, x, y, sample_weight, batch_size) -> None:
    """`kdistill.data_contract.check` of data for the distiller's student."""
    tensors = getattr(distiller.student, "outputs", None) or [None]
    classes = [t.shape[-1] if t is not None else None for t in tensors]
    ranks = [len(t.shape) if t is not None else None for t in tensors]
    data_contract.check(
        x,
        y,
        sample_weight,
        batch_size,
        classes,
        distiller._student_losses,
        distiller._output_names,
        validation.static_shape(distiller.student, "inputs"),
        ranks,
    )


def _per_position(distiller) -> bool:
    """Whether the student has one output of shape (n, positions..., classes)."""
    tensors = getattr(distiller.student, "outputs", None) or []
    return len(tensors) == 1 and len(tensors[0].shape) >= 3


def _weights_for_targets(y, sample_weight):
    """Per-position weights for offline targets, in the targets' structure.

    Keras 3 takes offline targets (a dict) for several outputs and refuses
    one weight array that is not one weight per sample; given once per leaf
    of the targets, it slices them alongside (`kdistill.targets.split` keeps
    the labels' entry). Anything else is returned unchanged.
    """
    if not targets.packs_teacher_outputs(None, y) or not hasattr(sample_weight, "shape"):
        return sample_weight
    shape = sample_weight.shape
    if len(shape) < 2 or all(d == 1 for d in shape[1:]):
        return sample_weight
    return tf.nest.map_structure(lambda _: sample_weight, y)


def _data_as_arrays(distiller, x, y) -> tuple:
    """Python lists of numbers as arrays (y only for one output: a list
    there may hold one entry per output)."""
    if len(distiller._output_names) == 1:
        y = _lists_as_arrays(y, "y")
    return _lists_as_arrays(x, "x"), y


def _lists_as_arrays(value, name):
    """A Python list of numbers as one numpy array; anything else unchanged."""
    if data_contract.is_list_of_values(value):
        return data_contract.as_array(value, name)
    return value
