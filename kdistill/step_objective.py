"""A `Distiller`'s objective on one batch, from its models to the loss.

`kdistill.objective` holds the objective as pure functions of tensors; the
functions here read a `Distiller` (its models, feature views, adapters, loss
weights and trackers), run its teacher and student on a batch, and put those
pure parts together. `Distiller.train_step` and `test_step` call them.
"""

from __future__ import annotations

from kdistill import objective, outputs, pairing, targets, trackers
from kdistill.backend import tf


def teacher_pass(distiller, x, cached) -> tuple:
    """Returns (teacher outputs, teacher features) for the batch `x`.

    Args:
        cached: The batch's cached teacher outputs, or None. Used as they
            are unless a loss reads features, which needs the teacher to run.
    """
    if cached is None and distiller.teacher is None:
        raise ValueError(
            "This Distiller has teacher=None, so each batch must carry the "
            "cached teacher outputs: pass targets built with "
            "kdistill.offline_targets(labels, teacher_outputs) (see "
            "kdistill.cache_teacher_outputs)."
        )
    if cached is not None and any(l.uses_features for l in distiller.distillation_losses):
        cached = None  # feature losses need the online teacher pass anyway
    if cached is not None:
        return (cached, [])
    return pairing.run_teacher(
        distiller.teachers,
        distiller._teacher_view,
        distiller._teachers_return_probabilities,
        len(distiller._output_names),
        len(distiller.adapters),
        x,
    )


def compute(distiller, x, y, teacher, sample_weight, training) -> tuple:
    """Returns (total loss for this replica, y_pred, values to log).

    Args:
        distiller: The `Distiller` whose student runs on `x`.
        teacher: (teacher outputs, teacher features) for the batch.
    """
    teacher_out, teacher_feats = teacher
    y_pred, predictions, student_feats = pairing.run_student(
        distiller._student_view,
        distiller._student_outputs,
        len(distiller._output_names),
        len(distiller.adapters),
        x,
        training,
    )
    labels = [y] if len(predictions) == 1 else targets.per_output(y, distiller._output_names)
    batch = tf.shape(predictions[0])[0]
    local_batch = tf.cast(batch, tf.float32)
    # Decided when the step is traced: 0 for (batch, classes) outputs, whose
    # step is the per-sample one; above 0 every term is kept per position.
    axes = objective.position_axes(predictions)
    weights = objective.sample_weights(sample_weight, batch, axes)
    if axes:  # a Keras mask (Embedding(mask_zero=True)) marks padding too
        weights = objective.with_mask(weights, getattr(predictions[0], "_keras_mask", None))
    count = objective.position_count(predictions[0]) if axes else local_batch

    def mean(values):
        return objective.batch_mean(objective.per_position(values, axes), weights, count)

    terms = _distillation_terms(
        distiller, y, labels, teacher_out, teacher_feats, predictions, student_feats, weights
    )
    distill_mean = mean(
        objective.weighted_sum(
            distiller.distillation_loss_weights,
            [objective.per_position(t, axes) for t in terms],
        )
    )
    hard = objective.hard_loss_per_sample(
        distiller._student_losses, labels, predictions, distiller._output_names, axes
    )
    hard_mean = mean(hard) if hard is not None else tf.zeros((), tf.float32)
    regularization = distiller.student.losses + [
        l for a in distiller.adapters if a is not None for l in a.losses
    ]
    total = objective.mix(distiller.alpha, hard_mean, distill_mean, regularization)
    logs = {
        "total": total,
        "student": hard_mean,
        "distillation": distill_mean,
        "terms": [mean(t) for t in terms] if distiller._term_names else [],
        "batch": count,
    }
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return objective.replica_share(total, replicas), y_pred, logs


def _distillation_terms(
    distiller, y, labels, teacher_out, teacher_feats, student_predictions, student_feats, weights
):
    """The distillation losses per sample (or per position), one tensor per loss.

    `y` is the batch's labels as given, `labels` the same per output,
    `weights` the batch's weights (`objective.sample_weights`), which
    teacher agreement reads for per-position outputs.
    """
    losses = distiller.distillation_losses
    student_logits = [
        outputs.as_logits(s, p)
        for s, p in zip(student_predictions, distiller._student_returns_probabilities)
    ]
    # Known here for models whose output shapes were unknown when built.
    objective.check_class_axis(
        losses, [t.shape[-1] for t in student_logits], distiller._output_names
    )
    several = len(student_logits) > 1  # PerOutput losses take lists
    target, reference = pairing.teacher_targets(
        teacher_out, student_logits, distiller._output_names, distiller.teacher_weights
    )
    if distiller._track_teacher_agreement:
        if objective.position_axes(student_logits):
            values, weight = trackers.agreement_per_position(
                reference(), student_logits[0], weights
            )
        else:
            weight = tf.cast(tf.shape(student_logits[0])[0], tf.float32)
            values = trackers.agreement(reference(), student_logits[0])
        distiller.agreement_means.update_state(values, sample_weight=weight)
    pairs = pairing.feature_pairs(losses, distiller.adapters, teacher_feats, student_feats)
    return objective.distillation_terms(
        losses,
        target,
        student_logits if several else student_logits[0],
        labels if several else y,
        pairs,
    )
