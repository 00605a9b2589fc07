"""Built-in teacher and student architectures.

Small MLPs and CNNs sized by a width, used by the command line and the
strategy comparison. Any Keras model works with the `Distiller`; these are
defaults, not requirements.
"""

from __future__ import annotations

from kdistill.backend import keras


def mlp(
    input_shape, num_classes: int, hidden_units=(128,), dropout: float = 0.0, name: str = "mlp"
):
    """Returns a ReLU MLP that outputs logits.

    Args:
        input_shape: Shape of one sample; inputs of rank > 1 are flattened.
        num_classes: Number of output logits.
        hidden_units: Width of each hidden layer.
        dropout: Dropout rate after each hidden layer.
        name: Model name; layers are named f"{name}_hidden{i}" and
            f"{name}_logits".

    Returns:
        A functional `keras.Model`.

    Example:
        >>> mlp((8, 8, 1), 10, hidden_units=(32,)).count_params()
        2410
    """
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = keras.layers.Flatten(name=f"{name}_flatten")(inputs) if len(input_shape) > 1 else inputs
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout{i}")(x)
    outputs = keras.layers.Dense(num_classes, name=f"{name}_logits")(x)
    return keras.Model(inputs, outputs, name=name)


def small_cnn(
    input_shape,
    num_classes: int,
    filters=(32, 64),
    dense_units: int = 128,
    dropout: float = 0.0,
    name: str = "cnn",
):
    """Returns a small CNN (conv-pool blocks, then a dense layer) with logits.

    Args:
        input_shape: (height, width, channels).
        num_classes: Number of output logits.
        filters: Filters of each 3x3 conv block; each block halves the size.
        dense_units: Width of the dense layer before the logits.
        dropout: Dropout rate before the logits.
        name: Model name; conv layers are named f"{name}_conv{i}".

    Returns:
        A functional `keras.Model`.
    """
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"{name}_conv{i}")(x)
        if x.shape[1] >= 2 and x.shape[2] >= 2:
            x = keras.layers.MaxPooling2D(name=f"{name}_pool{i}")(x)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name=f"{name}_hidden0")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name=f"{name}_logits")(x)
    return keras.Model(inputs, outputs, name=name)


def teacher_for(input_shape, num_classes: int):
    """Returns the built-in teacher for a dataset's input shape.

    A CNN for images of at least 16x16, else a regularised two-layer MLP.
    """
    if len(input_shape) == 3 and input_shape[0] >= 16:
        return small_cnn(
            input_shape, num_classes, filters=(32, 64), dense_units=128, dropout=0.3, name="teacher"
        )
    return mlp(input_shape, num_classes, hidden_units=(512, 512), dropout=0.3, name="teacher")


def student_for(input_shape, num_classes: int, width: int):
    """Returns the built-in student of a given width (its hidden size).

    A one-hidden-layer MLP of `width` units for small inputs; for images of at
    least 16x16 a CNN with `width // 4` and `width // 2` filters and a dense
    layer of `width` units.
    """
    if width <= 0:
        raise ValueError(
            "Invalid value for argument `width`. Expected a positive integer. "
            f"Received: width={width}"
        )
    if len(input_shape) == 3 and input_shape[0] >= 16:
        return small_cnn(
            input_shape,
            num_classes,
            filters=(max(1, width // 4), max(1, width // 2)),
            dense_units=width,
            name="student",
        )
    return mlp(input_shape, num_classes, hidden_units=(width,), name="student")
