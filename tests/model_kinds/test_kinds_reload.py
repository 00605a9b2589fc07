"""Every kind's trained Distiller saves, reloads, predicts the same and
continues `fit` with its optimizer state."""

import logging
import warnings

import numpy as np
import pytest
from kinds import KINDS, trained

from kdistill import Distiller
from kdistill.backend import keras

OPTIMIZER_WARNING = "Skipping variable loading for optimizer"


@pytest.mark.parametrize("name", KINDS)
def test_reloaded_distiller_predicts_the_same_and_continues_fit(name, tmp_path, caplog):
    kind, distiller, _ = trained(name)
    path = str(tmp_path / f"{name}.keras")
    distiller.save(path)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        restored = keras.models.load_model(path)
        np.testing.assert_allclose(
            restored.predict(kind.x, verbose=0), distiller.predict(kind.x, verbose=0), atol=1e-6
        )
        steps = int(restored.optimizer.iterations.numpy())
        history = restored.fit(kind.x, kind.y, batch_size=16, epochs=1, verbose=0).history
    assert isinstance(restored, Distiller)
    assert steps == int(distiller.optimizer.iterations.numpy()) > 0
    assert int(restored.optimizer.iterations.numpy()) == steps + 2
    assert np.isfinite(history["loss"][0])
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [m for m in said if OPTIMIZER_WARNING in m]
