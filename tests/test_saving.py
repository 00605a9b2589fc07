import json
import zipfile

import numpy as np
import pytest
from conftest import tiny_mlp, toy_data

from kdistill import backend, compression, saving
from kdistill.backend import keras

legacy_only = pytest.mark.skipif(not backend.LEGACY_KERAS, reason="tfmot needs tf_keras")
keras3_only = pytest.mark.skipif(backend.LEGACY_KERAS, reason="Keras 3 behaviour")


def trained(model, callbacks=()):
    x, y = toy_data(n=32)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=list(callbacks))
    return model, x


def test_a_plain_model_file_names_no_tfmot_wrappers_and_loads_the_same(tmp_path):
    model, x = trained(tiny_mlp())
    path = str(tmp_path / "plain.keras")
    model.save(path)
    assert saving.tfmot_wrappers_in(path) == []
    np.testing.assert_allclose(
        saving.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


@legacy_only
@pytest.mark.parametrize("technique", ["pruning", "clustering"])
def test_a_pruned_or_clustered_tf_keras_model_loads_without_tfmot_scopes(technique, tmp_path):
    if technique == "pruning":
        wrapped = compression.prune(tiny_mlp(units=16), 0.5, begin_step=0, end_step=2, frequency=1)
        wrapper, callbacks = "PruneLowMagnitude", compression.callbacks(wrapped)
    else:
        wrapped, wrapper, callbacks = (
            compression.cluster(tiny_mlp(units=16), 4),
            "ClusterWeights",
            [],
        )
    wrapped, x = trained(wrapped, callbacks)
    path = str(tmp_path / f"{technique}.keras")
    wrapped.save(path)
    assert saving.tfmot_wrappers_in(path) == [wrapper]
    restored = saving.load_model(path)
    assert wrapper in {type(l).__name__ for l in restored.layers}
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), wrapped.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


@legacy_only
def test_a_quantization_aware_tf_keras_model_file_is_refused_with_what_to_save_instead(tmp_path):
    qat, x = trained(compression.quantize_aware(tiny_mlp(units=16)))
    path = str(tmp_path / "qat.keras")
    qat.save(path)
    assert "QuantizeWrapperV2" in saving.tfmot_wrappers_in(path)
    with pytest.raises(ValueError, match="quantization-aware.*save_weights.*quantize_aware"):
        saving.load_model(path)
    # What the error advises restores the model exactly.
    weights = str(tmp_path / "qat.weights.h5")
    qat.save_weights(weights)
    rebuilt = compression.quantize_aware(tiny_mlp(units=16))
    rebuilt.load_weights(weights)
    np.testing.assert_array_equal(rebuilt.predict(x, verbose=0), qat.predict(x, verbose=0))


@keras3_only
def test_a_tfmot_file_under_keras3_is_refused_with_the_way_to_load_it(tmp_path):
    path = tmp_path / "pruned.keras"
    config = {
        "class_name": "Functional",
        "config": {"layers": [{"class_name": "PruneLowMagnitude"}]},
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    with pytest.raises(ValueError, match="PruneLowMagnitude.*TF_USE_LEGACY_KERAS=1.*strip"):
        saving.load_model(str(path))
