"""The per-sample distillation objective, as pure functions of tensors.

A `Distiller` step computes, for each replica::

    total = alpha * mean(hard) + (1 - alpha) * mean(sum_i w_i * term_i)
            + regularization

where `hard` is the hard-label loss per sample (summed over the student's
outputs), `term_i` the i-th distillation loss per sample, and `mean` the
sample-weighted sum divided by the local batch size.

A student with one output of shape (batch, positions..., classes) (a causal
language model, a token classifier, a per-pixel segmentation head) is
trained per position: every term has one value per position, a
`sample_weight` of shape (batch, positions...) weights each position (0 for
padding: that position adds nothing), and `mean` divides the weighted sum by
the number of positions in the local batch, as Keras does for a weighted
loss. Per-sample weights of shape (batch,) weight every position of their
sample. `position_axes` says how many position axes a step has (0 for the
usual (batch, classes) outputs, whose traced step is unchanged). Each replica then takes
its share, `total / replicas`, so `tf.distribute` sums the shares to the mean
over the global batch. The objective is linear in the per-sample terms, so
mixing the means equals the mean of the mixed terms.

The first functions here resolve the objective's parts from the arguments a
`Distiller` takes (its distillation losses, their weights and log names, the
compiled hard-label loss per output); the others take tensors and return
tensors and read no model, so each can be checked by hand without `fit`.
"""

from __future__ import annotations

from kdistill import losses as losses_lib
from kdistill import outputs, validation
from kdistill.backend import keras, tf


def distillation_losses(distillation_loss) -> list:
    """Returns the distillation losses as a list of `DistillationLoss` objects.

    Args:
        distillation_loss: A loss, a registry name, a list of them, or None
            (`SoftTargetKD()`).

    Example:
        >>> distillation_losses(["soft_target", "logit_mse"])
        [<SoftTargetKD ...>, <LogitMSE ...>]
    """
    if distillation_loss is None:
        return [losses_lib.SoftTargetKD()]
    items = (
        distillation_loss if isinstance(distillation_loss, (list, tuple)) else [distillation_loss]
    )
    if not items:
        raise ValueError(
            "Invalid value for argument `distillation_loss`: the list is empty. "
            "Pass at least one loss, e.g. kdistill.losses.SoftTargetKD()."
        )
    return [losses_lib.get(item) for item in items]


def loss_weights(weights, count: int) -> list:
    """Returns one non-negative weight per distillation loss (default 1.0 each).

    Args:
        weights: A number, a list of numbers, or None.
        count: How many distillation losses there are.
    """
    if weights is None:
        return [1.0] * count
    weights = list(weights) if isinstance(weights, (list, tuple)) else [weights]
    if len(weights) != count:
        raise ValueError(
            "Invalid value for argument `distillation_loss_weights`: expected "
            f"one weight per distillation loss ({count}), received "
            f"{len(weights)}: {weights}."
        )
    return [validation.check_non_negative(w, "distillation_loss_weights") for w in weights]


def term_names(losses) -> list:
    """Returns the log name of each distillation loss's term.

    Example:
        >>> term_names([SoftTargetKD(), LogitMSE(), SoftTargetKD(2.0)])
        ['soft_target_loss', 'logit_mse_loss', 'soft_target_1_loss']
    """
    names, seen = [], {}
    for loss in losses:
        base = loss.registry_name
        seen[base] = seen.get(base, 0) + 1
        names.append(f"{base}_loss" if seen[base] == 1 else f"{base}_{seen[base] - 1}_loss")
    return names


def hard_losses(loss, output_names, alpha: float = 0.0) -> list:
    """Returns the compiled hard-label loss as one resolved loss (or None) per output.

    Args:
        loss: What `compile` got as `loss`: one loss (or its name) for one
            output; for several, a list in output order or a dict keyed by
            output name (None, or a name left out: no hard-label loss).
        output_names: The student's output names (`kdistill.outputs.names`).
        alpha: The hard-label loss's weight; above 0 it needs a loss.
    """
    chosen = _hard_losses(loss, output_names)
    if alpha > 0 and all(l is None for l in chosen):
        raise ValueError(
            "Invalid value for argument `loss`: the student's hard-label "
            f"loss is required because alpha={alpha} > 0. Pass e.g. "
            "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), "
            "or build the Distiller with alpha=0."
        )
    return chosen


def _hard_losses(loss, output_names) -> list:
    count = len(output_names)
    if isinstance(loss, (list, tuple)) and count == 1 and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, dict) and count == 1 and len(loss) == 1:
        loss = next(iter(loss.values()))
    if loss is None:
        return [None] * count
    if count == 1:
        return [keras.losses.get(loss)]
    if isinstance(loss, dict):
        chosen = outputs.by_name(loss, output_names, "loss")
    elif isinstance(loss, (list, tuple)) and len(loss) == count:
        chosen = list(loss)
    else:
        raise ValueError(
            f"Invalid value for argument `loss`: the student has {count} outputs "
            f"({', '.join(output_names)}), so pass a list with one loss per output, "
            "in that order, or a dict keyed by output name (None, or a name left "
            f"out, trains that output on the teacher alone). Received: loss={loss!r}"
        )
    return [keras.losses.get(l) if l is not None else None for l in chosen]


def check_class_axis(losses, widths, output_names) -> None:
    """Refuses a loss that compares softmax distributions on an output of one unit.

    Softmax over one unit is 1 whatever the logit, so such a loss is exactly
    0 and a regression student would learn nothing from its teacher.

    Args:
        losses: The distillation losses.
        widths: The last dimension of each student output (None: unknown).
        output_names: The student's output names, in the same order.
    """
    for loss in losses:
        for position, chosen in _per_output(loss, len(widths)):
            width = widths[position]
            if width == 1 and isinstance(chosen, (losses_lib.SoftTargetKD, losses_lib.DecoupledKD)):
                where = f" on the output {output_names[position]!r}" if len(widths) > 1 else ""
                raise ValueError(
                    "Invalid value for argument `distillation_loss`. Expected a loss for "
                    f"an output of one unit (a regression output){where}, such as "
                    "kdistill.losses.LogitMSE(). Received: distillation_loss="
                    f"{type(chosen).__name__}, which compares softmax distributions over "
                    "classes: over one unit it is always 0, and the student would learn "
                    "nothing from the teacher."
                )


def _per_output(loss, count: int) -> list:
    """(output position, loss) for each output `loss` applies to."""
    if isinstance(loss, losses_lib.PerOutput):
        chosen = loss._by_position if loss._by_position is not None else loss.losses
        if isinstance(chosen, list):
            return [(i, l) for i, l in enumerate(chosen) if l is not None]
        return []
    if loss.uses_features:
        return []
    return [(i, loss) for i in range(count)]


def distillation_terms(losses, target, student_logits, labels, feature_pairs) -> list:
    """Returns each distillation loss per sample, in the order of `losses`.

    Args:
        losses: The distillation losses.
        target: `target(loss)` gives the teacher logits `loss` compares
            the student with (`kdistill.pairing.teacher_targets`).
        student_logits: The student's logits: a tensor, or a list for a
            student with several outputs.
        labels: The labels, in the same structure, for losses that need them.
        feature_pairs: (teacher, student) features for each feature loss, in
            order (`kdistill.pairing.feature_pairs`).
    """
    pairs = iter(feature_pairs)
    terms = []
    for loss in losses:
        if loss.uses_features:
            terms.append(loss.per_sample(*next(pairs)))
        elif loss.needs_labels:
            terms.append(loss.per_sample(target(loss), student_logits, labels))
        else:
            terms.append(loss.per_sample(target(loss), student_logits))
    return terms


def position_axes(predictions) -> int:
    """Returns how many position axes the student's outputs have.

    One output of shape (batch, positions..., classes) is trained per
    position; outputs of shape (batch, classes), several outputs, or an
    output of unknown rank are trained per sample (0).

    Args:
        predictions: The student's outputs, one tensor per output.

    Example:
        >>> position_axes([tf.zeros((2, 16, 64))])
        1
    """
    if len(predictions) != 1 or predictions[0].shape.rank is None:
        return 0
    return max(predictions[0].shape.rank - 2, 0)


def per_position(values, axes: int):
    """Returns per-sample or per-position `values` with `1 + axes` axes.

    Extra trailing axes are averaged; a per-sample value (a feature loss's)
    is repeated over the positions (as a (batch, 1, ...) tensor that
    broadcasts). With `axes=0` and values of shape (batch,), `values` itself.

    Example:
        >>> per_position(tf.ones((2, 16, 3)), 1).shape
        TensorShape([2, 16])
    """
    rank, wanted = values.shape.rank, 1 + axes
    if rank == wanted:
        return values
    if rank > wanted:
        return tf.reduce_mean(values, axis=list(range(wanted, rank)))
    return tf.reshape(values, tf.concat([tf.shape(values), [1] * (wanted - rank)], 0))


def position_count(prediction):
    """The number of positions (batch x positions...) of a per-position
    output (batch, positions..., classes), as a float32 scalar."""
    return tf.cast(tf.reduce_prod(tf.shape(prediction)[:-1]), tf.float32)


def hard_loss_per_sample(losses, labels, predictions, output_names, axes: int = 0):
    """Returns the hard-label loss per sample, summed over the outputs.

    Args:
        losses: One compiled loss per output (a `keras.losses.Loss`, a
            function `(y_true, y_pred) -> values`, or None for an output
            trained on the teacher alone).
        labels: One label tensor per output (None where there are none).
        predictions: The student's outputs, one per output.
        output_names: The output names, for the error message.
        axes: The position axes (`position_axes`): 0 gives one value per
            sample, 1 one per (sample, position), and so on.

    Returns:
        A float32 tensor of shape (batch, positions...), or None when no
        output has a loss. Losses with more values are averaged over the
        extra axes.

    Example:
        >>> ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> hard_loss_per_sample([ce], [y], [logits], ["output"])  # (batch,)
    """
    total = None
    for name, loss, y_true, y_pred in zip(output_names, losses, labels, predictions):
        if loss is None:
            continue
        if y_true is None:
            raise ValueError(
                f"Invalid value for argument `y`: no labels for the output "
                f"{name!r}, which the compiled loss trains. Add its labels, "
                "or compile with None as its loss."
            )
        per_sample = loss.call if isinstance(loss, keras.losses.Loss) else loss
        values = tf.cast(per_sample(y_true, y_pred), tf.float32)
        if values.shape.rank and values.shape.rank > 1 + axes:
            values = tf.reduce_mean(values, axis=list(range(1 + axes, values.shape.rank)))
        total = values if total is None else total + values
    return total


def sample_weights(sample_weight, batch, axes: int = 0):
    """Returns the sample weights as float32, or None.

    Args:
        sample_weight: The batch's weights: (batch,) or (batch, 1), or, for
            per-position outputs, (batch, positions...).
        batch: The batch size (a scalar tensor).
        axes: The position axes (`position_axes`).

    Returns:
        For `axes=0`, a vector (batch,) (Keras may give (batch, 1): the first
        column is kept). Otherwise weights that broadcast against values of
        shape (batch, positions...): per-position weights as they are,
        per-sample weights as (batch, 1, ...).

    Example:
        >>> sample_weights(tf.constant([1.0, 0.0]), 2, axes=1).shape
        TensorShape([2, 1])
    """
    if sample_weight is None:
        return None
    weights = tf.cast(sample_weight, tf.float32)
    if not axes:
        return tf.reshape(weights, (batch, -1))[:, 0]
    shape = weights.shape
    if shape.rank is not None and shape.rank > 1 and any(d != 1 for d in shape[1:]):
        return weights  # one per position (a None dimension broadcasts as either)
    return tf.reshape(weights, [batch] + [1] * axes)


def with_mask(weights, mask):
    """Per-position weights times a Keras mask of the positions (0 at padding).

    Args:
        weights: From `sample_weights` (per position), or None.
        mask: The output's Keras mask (batch, positions...), or None.

    Returns:
        The weights with masked positions at 0; `weights` when `mask` is None.

    Example:
        >>> with_mask(None, tf.constant([[True, False]])).numpy()
        array([[1., 0.]], dtype=float32)
    """
    if mask is None:
        return weights
    mask = tf.cast(mask, tf.float32)
    return mask if weights is None else weights * mask


def batch_mean(values, weights, local_batch):
    """Returns the sample-weighted mean of per-sample `values` over the batch.

    The weighted sum is divided by the number of samples (or positions),
    not by the sum of the weights, as Keras does: a weight of 0 removes a
    sample's (or a padded position's) loss without raising the others'.

    Args:
        values: Per-sample losses, shape (batch,), or per-position losses
            (batch, positions...).
        weights: From `sample_weights`, or None (all 1).
        local_batch: The replica's batch size as a float32 scalar; for
            per-position values, its number of positions
            (`position_count`).

    Example:
        >>> batch_mean(tf.constant([2.0, 4.0]), tf.constant([1.0, 3.0]), 2.0)
        7.0  # (2 * 1 + 4 * 3) / 2
    """
    if weights is not None:
        values = values * weights
    return tf.reduce_sum(values) / local_batch


def weighted_sum(weights, terms):
    """Returns sum_i(weights[i] * terms[i]): the distillation loss per sample."""
    return tf.add_n([w * t for w, t in zip(weights, terms)])


def mix(alpha, hard, distillation, regularization=()):
    """Returns alpha * hard + (1 - alpha) * distillation + sum(regularization).

    Args:
        alpha: Weight of the hard-label loss (a number or a scalar variable).
        hard: The hard-label loss (a mean, or per sample).
        distillation: The distillation loss, in the same form.
        regularization: Scalar losses added as they are (the student's and
            the adapters' `losses`).

    Example:
        >>> mix(0.25, 2.0, 6.0)  # 0.25 * 2 + 0.75 * 6
        5.0
    """
    total = alpha * hard + (1.0 - alpha) * distillation
    if regularization:
        total += tf.add_n([tf.cast(r, tf.float32) for r in regularization])
    return total


def replica_share(total, replicas: int):
    """Returns this replica's share of the global-batch mean, `total / replicas`.

    Each replica's loss is a mean over its local batch; `tf.distribute` sums
    the replicas' gradients, so each contributes 1 / replicas of the mean.
    """
    if replicas > 1:
        return total / replicas
    return total
