import pytest

from kdistill import backend
from kdistill.compare import strategies


def test_full_name_parses_every_stage():
    s = strategies.parse("kd_t8_a0.2+prune80+int8")
    assert (s.training, s.temperature, s.alpha, s.sparsity, s.quantization, s.qat) == (
        "kd",
        8.0,
        0.2,
        0.8,
        "int8",
        False,
    )


def test_seed_lambda_form_sets_alpha_to_one_over_one_plus_lambda():
    s = strategies.parse("mse_l0.25")
    assert s.mse_lambda == 0.25 and s.alpha == pytest.approx(0.8)


def test_post_training_quantization_reuses_the_trained_student():
    assert strategies.parse("kd+int8").training_key == strategies.parse("kd").training_key
    assert strategies.parse("kd+qat8").training_key != strategies.parse("kd").training_key


def test_default_set_parses_and_has_qat_only_on_tf_keras():
    names = strategies.default_names()
    for name in names:
        strategies.parse(name)
    assert ("kd+qat8" in names) == backend.LEGACY_KERAS


@pytest.mark.parametrize("bad", ["kdd", "kd+prune80+prune50", "labels+int4", "", "kd+"])
def test_unknown_strategy_lists_the_valid_forms(bad):
    with pytest.raises(ValueError, match="Unknown strategy .*Training stages: labels, kd"):
        strategies.parse(bad)


def test_alpha_outside_unit_interval_is_rejected():
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        strategies.parse("kd_t4_a2")
