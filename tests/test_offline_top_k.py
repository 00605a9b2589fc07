"""Offline distillation from a top-k cache of the teacher's outputs."""

import numpy as np
import pytest
from test_per_position import (
    CE,
    CLASSES,
    LENGTH,
    N,
    loss_at_rate_zero,
    token_classifier,
    token_data,
    trained_teacher,
)

from kdistill import Distiller, cache_teacher_outputs, offline_targets
from kdistill.backend import keras, tf
from kdistill.losses import GeneralizedJSD, LogitMSE, ReverseKL, SoftTargetKD


def test_top_k_cache_holds_eight_bytes_per_kept_logit_and_four_for_the_tail():
    ids, _, _ = token_data()
    teacher = token_classifier(16, "teacher", 0)
    full = cache_teacher_outputs(teacher, ids)
    compact = cache_teacher_outputs(teacher, ids, top_k=2)
    positions = N * LENGTH
    assert full.nbytes / positions == 4 * CLASSES
    assert sum(v.nbytes for v in compact.values()) / positions == 8 * 2 + 4
    np.testing.assert_allclose(compact["top_k_logits"], np.sort(full, -1)[..., ::-1][..., :2])


@pytest.mark.parametrize(
    "loss", [SoftTargetKD(2.0), ReverseKL(), GeneralizedJSD(0.3)], ids=lambda l: type(l).__name__
)
def test_distiller_loss_from_a_top_k_cache_of_every_class_equals_the_full_cache(loss):
    ids, labels, weights = token_data()
    teacher, student = token_classifier(16, "teacher", 0), token_classifier(4, "student", 1)

    def loss_from(cached):
        distiller = Distiller(None, student, loss, alpha=0.5)
        return loss_at_rate_zero(distiller, ids, offline_targets(labels, cached), weights)

    full = loss_from(cache_teacher_outputs(teacher, ids))
    every_class = loss_from(cache_teacher_outputs(teacher, ids, top_k=CLASSES))
    assert every_class == pytest.approx(full, rel=1e-5)


def test_a_loss_that_needs_every_logit_is_refused_a_top_k_cache_naming_soft_targets():
    ids, labels, _ = token_data()
    cached = cache_teacher_outputs(token_classifier(16, "teacher", 0), ids, top_k=2)
    distiller = Distiller(None, token_classifier(4, "student", 1), LogitMSE())
    distiller.compile(loss=CE)
    with pytest.raises(ValueError, match="LogitMSE cannot train from a top-k cache.*SoftTargetKD"):
        distiller.fit(ids, offline_targets(labels, cached), epochs=1, verbose=0)


def test_top_k_larger_than_the_classes_is_refused():
    with pytest.raises(ValueError, match=r"`top_k`: 5 is more than the teacher's 4 classes"):
        cache_teacher_outputs(token_classifier(8, "teacher", 0), token_data()[0], top_k=5)


def test_student_learns_from_a_top_k_cache_in_a_dataset_with_weights_per_position():
    ids, labels, weights = token_data()
    teacher = trained_teacher()
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels, weights)).batch(8)
    cached = cache_teacher_outputs(teacher, dataset, top_k=2)
    student = token_classifier(8, "student", 1)
    distiller = Distiller(None, student, SoftTargetKD(1.0), alpha=0.0)  # the teacher alone
    distiller.compile(keras.optimizers.Adam(0.05), loss=CE)
    distiller.track_teacher_agreement(True)
    history = distiller.fit(cached, epochs=20, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    # The top-1 class is always kept, so agreement is measured exactly.
    match = student.predict(ids, verbose=0).argmax(-1) == teacher.predict(ids, verbose=0).argmax(-1)
    assert match[weights > 0].mean() > 0.8
