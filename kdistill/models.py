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
    shift_pixels: int = 0,
):
    """Returns a small CNN (conv-pool blocks, then a dense layer) with logits.

    Args:
        input_shape: (height, width, channels).
        num_classes: Number of output logits.
        filters: Filters of each 3x3 conv block; each block halves the size.
        dense_units: Width of the dense layer before the logits.
        dropout: Dropout rate before the logits.
        name: Model name; conv layers are named f"{name}_conv{i}".
        shift_pixels: Shift training images by up to this many pixels (a
            `RandomTranslation` layer, which passes inputs through unchanged
            at inference, so an exported file computes the plain CNN).

    Returns:
        A functional `keras.Model`.
    """
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    if shift_pixels:
        height, width = input_shape[0], input_shape[1]
        x = keras.layers.RandomTranslation(
            shift_pixels / height, shift_pixels / width, fill_mode="constant", name=f"{name}_shift"
        )(x)
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


def separable_cnn(input_shape, num_classes: int, width: int = 32, name: str = "separable"):
    """Returns a CNN built for size: depthwise-separable blocks and global pooling.

    A 3x3 convolution with `width // 4` filters, then two depthwise-separable
    blocks (a 3x3 depthwise convolution, then a 1x1 convolution to
    `width // 2` and `width` channels), each convolution followed by batch
    normalization (folded into the convolution when exported to TFLite) and
    ReLU, max pooling after the first two blocks, global average pooling and
    the logits. Without a dense layer on the flattened feature map its size
    hardly grows with the image size, so a 28x28 model of width 64 holds about
    4,000 parameters (an int8 `.tflite` file of about 13 KB).

    Args:
        input_shape: (height, width, channels).
        num_classes: Number of output logits.
        width: Channels of the last block (at least 4).
        name: Model name; the pooled features are f"{name}_features".

    Returns:
        A functional `keras.Model`.

    Example:
        >>> separable_cnn((28, 28, 1), 10, width=64).count_params() < 5000
        True
    """
    if width < 4:
        raise ValueError(
            "Invalid value for argument `width`. Expected an integer >= 4 (the first "
            f"convolution has width // 4 filters). Received: width={width}"
        )
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")

    def normalized(x, tag):
        x = layers.BatchNormalization(name=f"{name}_bn_{tag}")(x)
        return layers.ReLU(name=f"{name}_relu_{tag}")(x)

    x = layers.Conv2D(width // 4, 3, padding="same", use_bias=False, name=f"{name}_conv0")(inputs)
    x = layers.MaxPooling2D(name=f"{name}_pool0")(normalized(x, "conv0"))
    for i, channels in enumerate((width // 2, width), start=1):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw{i}")(x)
        x = normalized(x, f"dw{i}")
        x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_pw{i}")(x)
        x = normalized(x, f"pw{i}")
        if i == 1 and x.shape[1] >= 2 and x.shape[2] >= 2:
            x = layers.MaxPooling2D(name=f"{name}_pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_features")(x)
    outputs = layers.Dense(num_classes, name=f"{name}_logits")(x)
    return keras.Model(inputs, outputs, name=name)


def is_image(input_shape) -> bool:
    """Whether the built-in models treat inputs of this shape as images (CNNs).

    Example:
        >>> is_image((28, 28, 1)), is_image((8, 8, 1))
        (True, False)
    """
    return len(input_shape) == 3 and input_shape[0] >= 16


def teacher_for(input_shape, num_classes: int):
    """Returns the built-in teacher for a dataset's input shape.

    A CNN for images of at least 16x16 (trained on images shifted by up to 2
    pixels: 99.5% on MNIST in 15 epochs with `training.teacher_settings`, see
    benchmarks/compression_frontier.py), else a regularised two-layer MLP.
    """
    if is_image(input_shape):
        return small_cnn(
            input_shape,
            num_classes,
            filters=(32, 64),
            dense_units=128,
            dropout=0.3,
            name="teacher",
            shift_pixels=2,
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
    if is_image(input_shape):
        return small_cnn(
            input_shape,
            num_classes,
            filters=(max(1, width // 4), max(1, width // 2)),
            dense_units=width,
            name="student",
        )
    return mlp(input_shape, num_classes, hidden_units=(width,), name="student")
