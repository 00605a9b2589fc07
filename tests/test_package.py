"""What `import kdistill` does: no TensorFlow on its own, Keras classes registered after Keras."""

import os
import subprocess
import sys
import textwrap


def run_python(code, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_import_kdistill_alone_does_not_load_tensorflow(tmp_path):
    result = run_python(
        """
        import sys
        import kdistill
        print("tensorflow" in sys.modules)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_saved_distiller_loads_after_keras_then_a_plain_import_kdistill(tmp_path):
    save = run_python(
        """
        from kdistill import Distiller, backend
        keras = backend.keras
        def mlp(units):
            return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(3)])
        distiller = Distiller(teacher=mlp(8), student=mlp(2))
        distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        distiller.save("distiller.keras")
        """,
        tmp_path,
    )
    assert save.returncode == 0, save.stderr
    load = run_python(
        """
        import os
        if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
            import tf_keras as keras
        else:
            import keras
        import kdistill
        model = keras.models.load_model("distiller.keras")
        print(type(model).__name__)
        """,
        tmp_path,
    )
    assert load.returncode == 0, load.stderr
    assert load.stdout.strip().splitlines()[-1] == "Distiller"
