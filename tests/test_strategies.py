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


@pytest.mark.parametrize(
    "name,fields",
    [
        # (training, temperature, alpha, mse_lambda, sparsity, quantization, qat)
        ("kd", ("kd", 4.0, 0.1, None, 0.0, "none", False)),
        ("kd_t4_a0", ("kd", 4.0, 0.0, None, 0.0, "none", False)),
        ("mse", ("mse", 4.0, 0.5, None, 0.0, "none", False)),
        ("labels+float16", ("labels", 4.0, 1.0, None, 0.0, "float16", False)),
        ("hint+prune50", ("hint", 4.0, 0.1, None, 0.5, "none", False)),
        ("dkd+int8", ("dkd", 4.0, 0.1, None, 0.0, "int8", False)),
        ("kd+qat8", ("kd", 4.0, 0.1, None, 0.0, "int8", True)),
        (" kd+prune90+qat8 ", ("kd", 4.0, 0.1, None, 0.9, "int8", True)),
    ],
)
def test_defaults_and_stages_parse_to_these_fields(name, fields):
    s = strategies.parse(name)
    assert s.name == name.strip()
    assert (s.training, s.temperature, s.alpha, s.mse_lambda) == fields[:4]
    assert (s.sparsity, s.quantization, s.qat) == fields[4:]


@pytest.mark.parametrize("bad", ["  ", "kdd", "kd+prune", "kd+int8+float16"])
def test_unknown_strategy_message_names_it_and_lists_the_forms(bad):
    with pytest.raises(ValueError) as error:
        strategies.parse(bad)
    assert str(error.value) == (
        f"Unknown strategy {bad!r}. A strategy is a training stage, optionally "
        "followed by +prune{P} and/or +dynamic|+float16|+int8|+qat8. Training "
        "stages: labels, kd, kd_t{T}_a{alpha} (e.g. kd_t4_a0.1), mse, "
        "mse_l{lambda}, hint, dkd. Examples: kd+prune80+int8, labels+int8."
    )


def test_a_name_that_is_not_a_string_is_unknown():
    with pytest.raises(ValueError, match="Unknown strategy 5. A strategy is"):
        strategies.parse(5)


@pytest.mark.parametrize("legacy", [True, False])
def test_default_set_adds_exactly_qat_on_tf_keras(legacy, monkeypatch):
    monkeypatch.setattr(backend, "LEGACY_KERAS", legacy)
    extra = ("kd+qat8",) if legacy else ()
    assert strategies.default_names() == strategies.DEFAULT_STRATEGIES + extra


def test_each_training_stage_builds_its_distillation_loss():
    from kdistill import losses

    # Labels alone: no distillation loss at all.
    assert strategies.parse("labels+int8").distillation_loss(None, None) is None
    kd = strategies.parse("kd_t8_a0.1").distillation_loss(None, None)
    assert type(kd) is losses.SoftTargetKD and float(kd.temperature.numpy()) == 8.0
    # Plain mse averages over classes; the seed form CE + lambda * ||z_t - z_s||^2 sums.
    plain = strategies.parse("mse").distillation_loss(None, None)
    seed = strategies.parse("mse_l0.1").distillation_loss(None, None)
    assert (type(plain), plain.reduction) == (losses.LogitMSE, "mean")
    assert (type(seed), seed.reduction) == (losses.LogitMSE, "sum")
    dkd = strategies.parse("dkd").distillation_loss(None, None)
    assert type(dkd) is losses.DecoupledKD


def test_hint_reads_the_layer_before_the_logits_of_each_model():
    from kdistill.backend import keras

    def model(prefix):
        return keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(5, name=f"{prefix}_first"),
                keras.layers.Dense(6, name=f"{prefix}_hidden"),
                keras.layers.Dense(3, name=f"{prefix}_logits"),
            ]
        )

    soft, hint = strategies.parse("hint").distillation_loss(model("t"), model("s"))
    assert float(soft.temperature.numpy()) == 4.0
    # layers[-2] is the hidden layer feeding the logits, not the first or the last.
    assert (hint.teacher_layers, hint.student_layers) == (("t_hidden",), ("s_hidden",))
