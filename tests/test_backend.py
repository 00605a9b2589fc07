import os
import subprocess
import sys

import pytest

from kdistill import backend, validation


def run_python(code, **env_overrides):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env_overrides)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("legacy", ["", "1"])
def test_import_neither_loads_tfmot_nor_changes_the_keras_switch(legacy):
    code = (
        "import os, sys\n"
        "before = os.environ.get('TF_USE_LEGACY_KERAS')\n"
        "import kdistill, kdistill.cli, kdistill.compression, kdistill.export, kdistill.callbacks\n"
        "assert 'tensorflow_model_optimization' not in sys.modules, 'tfmot imported'\n"
        "assert os.environ.get('TF_USE_LEGACY_KERAS') == before, 'switch changed'\n"
        "print(kdistill.backend.KERAS_NAME)\n"
    )
    env = {"TF_USE_LEGACY_KERAS": legacy}
    result = run_python(code, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("tf_keras" if legacy else "keras")


def test_backend_follows_tensorflows_switch():
    expected = os.environ.get("TF_USE_LEGACY_KERAS", "") in ("1", "true", "True")
    assert backend.LEGACY_KERAS is expected
    assert backend.keras.__name__.startswith("tf_keras" if expected else "keras")


def test_model_of_the_other_keras_is_rejected_with_the_switch_named():
    if backend.LEGACY_KERAS:
        import keras as other
    else:
        import tf_keras as other
    model = other.Sequential([other.Input((3,)), other.layers.Dense(2)])
    with pytest.raises(TypeError, match="argument `teacher`.*other Keras.*TF_USE_LEGACY_KERAS"):
        validation.check_model(model, "teacher")
