"""The README's quick-start snippet runs exactly as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def quick_start_code():
    text = README.read_text()
    section = text.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quick_start_runs_and_trains_a_student(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = quick_start_code()
    from kdistill import backend

    if backend.LEGACY_KERAS:
        code = code.replace("import keras\n", "import tf_keras as keras\n")
    namespace = {}
    exec(compile(code, "README quick start", "exec"), namespace)
    history = namespace["history"].history
    assert history["val_accuracy"][-1] > 0.8
    assert history["loss"][-1] < history["loss"][0]
    assert (tmp_path / "student.keras").exists()
