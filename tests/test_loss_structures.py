"""Losses called directly refuse structures they do not take, instead of
reading the first tensor of a list."""

import numpy as np
import pytest

from kdistill import losses

T = np.array([[2.0, -1.0, 0.5], [0.0, 1.0, 0.0]], "float32")
S = np.array([[0.1, 0.3, -0.2], [1.0, 0.0, 0.0]], "float32")


@pytest.mark.parametrize("loss", [losses.SoftTargetKD(), losses.LogitMSE(), losses.DecoupledKD()])
def test_logit_losses_refuse_a_list_of_tensors_and_point_to_per_output(loss):
    name = type(loss).__name__
    with pytest.raises(ValueError, match=rf"`student_outputs` of {name}.*PerOutput"):
        loss(T, [S, S], np.array([0, 1]))
    with pytest.raises(ValueError, match=rf"`teacher_outputs` of {name}.*a list of 2 tensors"):
        loss([T, T], S, np.array([0, 1]))


def test_logit_losses_still_take_nested_lists_of_numbers():
    value = float(losses.LogitMSE(reduction="sum")([[1.0, 2.0]], [[0.0, 0.0]]))
    assert value == pytest.approx(5.0)


def test_hint_loss_refuses_several_features_instead_of_using_the_first():
    with pytest.raises(ValueError, match="HintLoss compares one layer pair"):
        losses.HintLoss("t", "s")([T, S], [S, T])


def test_hint_loss_takes_one_feature_bare_or_in_a_list():
    bare = float(losses.HintLoss("t", "s")(T, S))
    assert float(losses.HintLoss("t", "s")([T], [S])) == pytest.approx(bare)
    assert bare == pytest.approx(float(np.mean((T - S) ** 2)), rel=1e-5)


def test_attention_transfer_refuses_feature_lists_that_do_not_pair_up():
    maps = np.ones((2, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match="one feature map per layer pair \\(2\\)"):
        losses.AttentionTransfer(["a", "b"], ["c", "d"])([maps, maps], [maps])


def test_per_output_still_takes_one_tensor_per_output():
    loss = losses.PerOutput([losses.LogitMSE(), None])
    assert float(loss([T, T], [S, T])) == pytest.approx(float(np.mean((T - S) ** 2)), rel=1e-5)
