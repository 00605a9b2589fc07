"""Pairing a teacher with a student: teacher lists, feature views, adapters.

A `Distiller` pairs its models once, when it is built: the teachers as a list
with normalised weights, the distillation losses lined up with the student's
outputs, a view of each model that also returns the layers feature losses
read (so each model still runs once per step), and the adapters that map a
student feature onto its teacher feature's shape. The checks that a teacher
and a student fit together at all live in `kdistill.validation`
(`check_pair`).
"""

from __future__ import annotations

from kdistill import losses as losses_lib
from kdistill import outputs, targets, validation
from kdistill.backend import keras, tf


def as_teacher_list(teacher) -> list:
    """Returns the teachers as a list: [] for None, [model] for one model.

    Args:
        teacher: A Keras model, a list of models (an ensemble), or None
            (offline distillation).

    Example:
        >>> as_teacher_list(None)
        []
    """
    if teacher is None:
        return []
    if isinstance(teacher, (list, tuple)):
        if not teacher:
            raise ValueError(
                "Invalid value for argument `teacher`: the ensemble list is "
                "empty. Pass one model, a list of models, or None for offline "
                "distillation."
            )
        return list(teacher)
    return [teacher]


def teacher_weights(weights, count: int) -> list:
    """Returns an ensemble's teacher weights, normalised to sum to 1.

    Args:
        weights: One non-negative weight per teacher, or None (equal).
        count: How many teachers there are (0 when they are not known yet,
            for cached outputs).

    Returns:
        A list of floats; [] for a single teacher given no weights.

    Example:
        >>> teacher_weights([1, 3], 2)
        [0.25, 0.75]
    """
    if weights is None:
        return [1.0 / count] * count if count > 1 else []
    weights = [validation.check_non_negative(w, "teacher_weights") for w in weights]
    if count and len(weights) != count:
        raise ValueError(
            "Invalid value for argument `teacher_weights`: expected one weight "
            f"per teacher ({count}), received {len(weights)}: {weights}."
        )
    total = sum(weights)
    if total <= 0:
        raise ValueError(
            "Invalid value for argument `teacher_weights`: they sum to 0. Give "
            "at least one teacher a positive weight."
        )
    return [w / total for w in weights]


def bind_output_losses(losses, output_names, teacher_count: int) -> None:
    """Lines `PerOutput` losses up with the student's outputs.

    A model with several outputs needs them: a plain loss would not say which
    outputs to match, and an ensemble distils models with one output only.

    Args:
        losses: The distillation losses.
        output_names: The student's output names (`kdistill.outputs.names`).
        teacher_count: How many teachers there are.
    """
    several = len(output_names) > 1
    for loss in losses:
        if isinstance(loss, losses_lib.PerOutput):
            loss.bind(output_names)
        elif several and not loss.uses_features:
            raise ValueError(
                f"Invalid value for argument `distillation_loss`: the student has "
                f"{len(output_names)} outputs ({', '.join(output_names)}), so "
                f"{type(loss).__name__} must say which to match. Wrap it: "
                f"kdistill.losses.PerOutput([{type(loss).__name__}(...), None, ...]) "
                "with one loss (or None) per output, or a dict keyed by output name."
            )
    if several and teacher_count > 1:
        raise ValueError(
            "Invalid value for argument `teacher`: a teacher ensemble distils "
            "models with one output; this student has "
            f"{len(output_names)}. Pass a single teacher."
        )


def feature_views(teachers: list, student, losses) -> tuple:
    """Returns (teacher view, student view) for the feature losses among `losses`.

    Each view is the model itself when no feature loss reads it, else a model
    that returns its outputs followed by the named layers' outputs, in the
    order the feature losses list them. The teacher view is None for an
    ensemble or for offline distillation.

    Args:
        teachers: The teachers as a list (`as_teacher_list`).
        student: The student model.
        losses: The distillation losses.
    """
    feature_losses = [l for l in losses if l.uses_features]
    if feature_losses and len(teachers) != 1:
        raise ValueError(
            "Feature losses ("
            + ", ".join(type(l).__name__ for l in feature_losses)
            + ") read one teacher's intermediate layers, so they need a "
            "single `teacher` model"
            + (" instead of teacher=None." if not teachers else ", not an ensemble.")
        )
    teacher = teachers[0] if len(teachers) == 1 else None
    teacher_layers = [n for l in feature_losses for n in l.teacher_layers]
    student_layers = [n for l in feature_losses for n in l.student_layers]
    return (
        feature_view(teacher, teacher_layers, "teacher"),
        feature_view(student, student_layers, "student"),
    )


def feature_view(model, layer_names, role: str):
    """Returns `model`, or a view of it that also outputs the named layers.

    Args:
        model: A Keras model with a layer graph, or None.
        layer_names: The layers whose outputs to add, in order.
        role: "teacher" or "student", for the messages.

    Example:
        >>> view = feature_view(student, ["student_hidden"], "student")
        >>> logits, hidden = view(x)
    """
    if model is None or not layer_names:
        return model
    inputs = graph_inputs(model)
    if inputs is None:
        raise ValueError(_no_graph_message(model, role))
    features = [layer_output(model, name, role) for name in layer_names]
    return keras.Model(inputs, [*model.outputs, *features], name=f"{model.name}_features")


def graph_inputs(model):
    """Returns `model`'s symbolic inputs in the structure it takes them, or
    None for a model without a layer graph (subclassed, or a Sequential not
    yet built).

    A Keras 3 Sequential has `inputs` but no `input`; a functional model's
    `input` keeps its structure (a dict of inputs stays a dict).
    """
    try:
        tensors = getattr(model, "inputs", None)
    except (AttributeError, ValueError):
        return None
    if not tensors:
        return None
    try:
        return model.input
    except (AttributeError, ValueError):
        return tensors[0] if len(tensors) == 1 else list(tensors)


def _no_graph_message(model, role: str) -> str:
    if isinstance(model, keras.Sequential):
        received = (
            f"the Sequential model {model.name!r} that has not been built (no Input, "
            "never called), so its layers have no outputs yet. Start it with "
            "keras.Input(shape), or call it once on a batch (model(x[:1])), before "
            "building the Distiller."
        )
    else:
        received = (
            f"the subclassed model {model.name!r}, without a layer graph. Build it as "
            "a Sequential or functional model with an Input layer."
        )
    return (
        f"Invalid value for argument `{role}`. Expected a model whose layers feature "
        f"losses can read. Received: {received}"
    )


def layer_output(model, path: str, role: str):
    """Returns the symbolic output of the layer named `path` in `model`.

    A layer inside a nested model is named by its path of layer names,
    "backbone/conv2" (the nested model as a layer of `model`, then its layer).

    Args:
        model: A Keras model with a layer graph.
        path: A layer name, or names joined by "/".
        role: "teacher" or "student", for the messages.
    """
    available = [layer.name for layer in model.layers]
    if path in available:
        layer = model.get_layer(path)
        if isinstance(layer, keras.Model):  # its own `output` is its inner graph's
            return _single(_outer_node(model, layer).output_tensors)
        return layer.output
    first, _, rest = path.partition("/")
    if not rest or first not in available:
        nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        hint = (
            " A layer inside a nested model is named by its path of layer names, "
            f"for example '{nested[0].name}/{_first_layer(nested[0])}'."
            if nested
            else ""
        )
        raise ValueError(
            f"The {role} has no layer named {path!r}. Its layers are: {', '.join(available)}.{hint}"
        )
    inner = model.get_layer(first)
    if not isinstance(inner, keras.Model) or graph_inputs(inner) is None:
        raise ValueError(
            f"The {role}'s layer {first!r} is not a model with a layer graph, so "
            f"{path!r} names no layer in it. Name a layer of the {role} itself."
        )
    # Keras keeps no tensor for a layer inside a nested model's call, so the
    # nested model's layers up to that one run again on the same inputs (with
    # the same weights) to give it.
    feature = layer_output(inner, rest, role)
    inner_view = keras.Model(graph_inputs(inner), feature)
    return inner_view(_single(_outer_node(model, inner).input_tensors))


def _outer_node(model, inner):
    """The node of `model`'s graph that calls its nested model `inner`."""
    own = {id(t) for t in inner.inputs}
    for node in reversed(inner._inbound_nodes):
        tensors = tf.nest.flatten(node.input_tensors)
        if tensors and not any(id(t) in own for t in tensors):
            return node
    raise ValueError(
        f"The nested model {inner.name!r} is not called inside {model.name!r}, "
        "so none of its layers can be read. Name a layer of the outer model."
    )


def _single(tensors):
    tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    return tensors[0] if len(tensors) == 1 else list(tensors)


def _first_layer(model) -> str:
    names = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    return names[0] if names else "layer"


def build_adapters(losses, teacher_view, student_view, output_count: int) -> list:
    """Builds each feature loss's adapters, one per layer pair (None: no adapter).

    Args:
        losses: The distillation losses (only feature losses make adapters).
        teacher_view: The teacher's feature view (`feature_views`).
        student_view: The student's.
        output_count: How many outputs precede the features in each view.

    Returns:
        A flat list, in the order of the feature views' extra outputs.
    """
    feature_losses = [l for l in losses if l.uses_features]
    if not feature_losses:
        return []
    teacher_shapes = [tuple(t.shape) for t in teacher_view.outputs[output_count:]]
    student_shapes = [tuple(t.shape) for t in student_view.outputs[output_count:]]
    adapters, position = [], 0
    for loss in feature_losses:
        count = len(loss.teacher_layers)
        made = loss.make_adapters(
            teacher_shapes[position : position + count],
            student_shapes[position : position + count],
        )
        for adapter, shape in zip(made, student_shapes[position : position + count]):
            if adapter is not None and not adapter.built:
                adapter.build(shape)
        adapters.extend(made)
        position += count
    return adapters


def feature_pairs(losses, adapters, teacher_features, student_features) -> list:
    """Returns, for each feature loss in `losses`, its (teacher, student) features.

    The student's features pass through their adapters, so each pair has
    matching shapes.

    Args:
        losses: The distillation losses (others are skipped).
        adapters: From `build_adapters`.
        teacher_features: The teacher view's extra outputs, as a list.
        student_features: The student view's.
    """
    pairs, position = [], 0
    for loss in losses:
        if not loss.uses_features:
            continue
        end = position + len(loss.teacher_layers)
        student = [
            adapter(f) if adapter is not None else f
            for adapter, f in zip(adapters[position:end], student_features[position:end])
        ]
        pairs.append((teacher_features[position:end], student))
        position = end
    return pairs


def teacher_targets(teacher_outputs, student_logits: list, output_names, weights: list):
    """Returns what each logit loss compares the student with, and the
    teacher logits that teacher agreement is measured against.

    Args:
        teacher_outputs: The teacher's logits (online or cached): a tensor
            for one output, a list for several; an ensemble's stacked on
            axis 1, (batch, teachers, classes).
        student_logits: The student's logits, one tensor per output.
        output_names: The student's output names, for messages.
        weights: The ensemble's teacher weights (`teacher_weights`); [] for
            equal weights.

    Returns:
        ``(target, reference)``: `target(loss)` gives the teacher logits for
        `loss` (an ensemble combined as the loss combines teachers; a list
        for several outputs), and `reference()` the teacher logits of the
        first output (an ensemble's averaged distribution at temperature 1).

    Raises:
        ValueError: Teacher and student outputs differ in shape, or a loss
            that cannot read a top-k cache is given one.
    """
    if targets.is_top_k(teacher_outputs):
        return _top_k_targets(teacher_outputs, student_logits)
    if len(student_logits) > 1:
        teacher_logits = [tf.cast(t, tf.float32) for t in outputs.flat(teacher_outputs)]
        for name, t, s in zip(output_names, teacher_logits, student_logits):
            validation.check_same_shape(t.shape, s.shape, f"outputs {name!r}")
        return (lambda loss: teacher_logits), (lambda: teacher_logits[0])
    teacher_logits = tf.cast(teacher_outputs, tf.float32)
    ensemble = teacher_logits.shape.rank == student_logits[0].shape.rank + 1
    shape = teacher_logits.shape
    if not ensemble:
        validation.check_same_shape(shape, student_logits[0].shape, "outputs")
        return (lambda loss: teacher_logits), (lambda: teacher_logits)
    validation.check_same_shape(shape[:1] + shape[2:], student_logits[0].shape, "outputs")
    weights = list(weights) or teacher_weights(None, teacher_logits.shape[1])
    return (
        lambda loss: loss.combine_teachers(teacher_logits, weights),
        lambda: losses_lib.average_distribution_logits(teacher_logits, weights, 1.0),
    )


def _top_k_targets(top_k, student_logits: list):
    """`teacher_targets` for a top-k cache: the cache itself, for losses that
    read it; full-width stand-in logits for teacher agreement."""
    if len(student_logits) > 1:
        raise ValueError(
            "Invalid value for argument `teacher_outputs`: a top-k cache holds one "
            f"output, but the student has {len(student_logits)}. Cache full logits "
            "(top_k=None) for a model with several outputs."
        )
    shape = top_k["top_k_logits"].shape
    validation.check_same_shape(shape[:-1], student_logits[0].shape[:-1], "outputs (top-k)")

    def target(loss):
        if not loss.takes_top_k:
            raise ValueError(
                f"Invalid value for argument `distillation_loss`: {type(loss).__name__} "
                "cannot train from a top-k cache of the teacher's outputs (it needs every "
                "logit). Use SoftTargetKD, ReverseKL or GeneralizedJSD, which compare "
                "k + 1 buckets, or cache full logits with top_k=None."
            )
        return top_k

    classes = tf.shape(student_logits[0])[-1]
    return target, lambda: targets.dense_from_top_k(top_k, classes)


def run_student(view, structure, output_count: int, feature_count: int, x, training):
    """Runs the student's feature view once.

    Args:
        view: The student's feature view (`feature_views`).
        structure: The student's output structure (`kdistill.outputs.structure`),
            to pack several outputs as the student returns them.
        output_count: How many outputs the student has.
        feature_count: How many features the view returns after the outputs.
        x: The batch's inputs.
        training: Whether the student runs in training mode.

    Returns:
        ``(y_pred, predictions, features)``: the outputs in the student's
        structure, the same as a flat list, and the features.
    """
    values = outputs.flat(view(x, training=training))
    validation.check_output_count(values, output_count + feature_count, "student")
    predictions = values[:output_count]
    if output_count == 1:
        return predictions[0], predictions, values[1:]
    y_pred = tf.nest.pack_sequence_as(structure, predictions)
    return y_pred, predictions, values[output_count:]


def run_teacher(teachers: list, view, probabilities: list, output_count: int, feature_count, x):
    """Runs the teacher (or each teacher of an ensemble) once, in inference mode.

    Call it outside the gradient tape: no activation is kept, and the
    results are wrapped in `stop_gradient`.

    Args:
        teachers: The teachers (`as_teacher_list`), at least one.
        view: The single teacher's feature view (`feature_views`).
        probabilities: Per teacher, `kdistill.outputs.probability_outputs`.
        output_count: How many outputs the student (and teacher) has.
        feature_count: How many features the view returns after the outputs.
        x: The batch's inputs.

    Returns:
        ``(logits, features)``: the logits are a tensor for one output, a
        list for several; an ensemble's are stacked on axis 1,
        (batch, teachers, classes), and it has no features.
    """
    if len(teachers) == 1:
        values = [tf.stop_gradient(v) for v in outputs.flat(view(x, training=False))]
        validation.check_output_count(values, output_count + feature_count, "teacher")
        logits = [outputs.as_logits(v, p) for v, p in zip(values[:output_count], probabilities[0])]
        return (logits[0] if output_count == 1 else logits), values[output_count:]
    logits = [
        outputs.as_logits(tf.stop_gradient(t(x, training=False)), p[0])
        for t, p in zip(teachers, probabilities)
    ]
    return tf.stack(logits, axis=1), []
