"""The teacher cache: a second run on the same data loads the teacher; anything else retrains."""

import numpy as np

from kdistill import compare, data, models, saving
from kdistill.compare import teacher_cache

TINY = dict(
    dataset="digits",
    strategy_names=["labels"],
    student_widths=[4],
    epochs=1,
    teacher_epochs=2,
    max_train=100,
    latency_samples=2,
)


def teacher_outputs(result, split):
    teacher = saving.load_model(f"{result.output_dir}/teacher.keras")
    return teacher.predict(split.x_test, verbose=0)


def test_a_second_run_on_the_same_data_loads_the_teacher_and_retrain_trains_it(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    first = compare.run(output_dir=str(tmp_path / "a"), teacher_cache_dir=cache, **TINY)
    assert first.teacher["training"]["source"] == "trained"
    assert first.teacher["training"]["epochs_run"] == 2
    capsys.readouterr()

    second = compare.run(output_dir=str(tmp_path / "b"), teacher_cache_dir=cache, **TINY)
    said = capsys.readouterr().out
    assert second.teacher["training"]["source"] == "cache"
    assert "Reusing the built-in teacher an earlier run trained on the same data" in said
    assert "Training the built-in teacher" not in said
    split = data.load("digits", max_train=100)
    np.testing.assert_array_equal(teacher_outputs(first, split), teacher_outputs(second, split))
    assert second.teacher["accuracy"] == first.teacher["accuracy"]

    third = compare.run(
        output_dir=str(tmp_path / "c"), teacher_cache_dir=cache, retrain_teacher=True, **TINY
    )
    assert third.teacher["training"]["source"] == "trained"
    assert "Training the built-in teacher" in capsys.readouterr().out


def test_the_key_changes_with_the_data_the_seed_the_epochs_and_the_architecture():
    split = data.load("digits", max_train=100)
    teacher = models.teacher_for(split.input_shape, split.num_classes)
    key = teacher_cache.teacher_key(split, teacher, epochs=2, seed=0, recipe="constant")
    assert key == teacher_cache.teacher_key(
        data.load("digits", max_train=100), teacher, 2, 0, "constant"
    )
    others = [
        teacher_cache.teacher_key(data.load("digits", max_train=99), teacher, 2, 0, "constant"),
        teacher_cache.teacher_key(
            data.load("digits", seed=1, max_train=100), teacher, 2, 0, "constant"
        ),
        teacher_cache.teacher_key(split, teacher, 3, 0, "constant"),
        teacher_cache.teacher_key(split, teacher, 2, 1, "constant"),
        teacher_cache.teacher_key(split, teacher, 2, 0, "cosine"),
        teacher_cache.teacher_key(split, models.mlp(split.input_shape, 10, (8,)), 2, 0, "constant"),
    ]
    assert len({key, *others}) == 7


def test_an_entry_for_another_key_or_unreadable_metadata_counts_as_absent(tmp_path):
    split = data.load("digits", max_train=100)
    model = models.mlp(split.input_shape, 10, (4,))
    key = "ab" * 32
    path = teacher_cache.store(str(tmp_path), key, model, {"train_s": 1.0})
    assert teacher_cache.lookup(str(tmp_path), key)["path"] == path
    assert teacher_cache.lookup(str(tmp_path), "ab" * 12 + "cd" * 20) is None  # same prefix
    with open(teacher_cache.paths(str(tmp_path), key)[1], "w") as f:
        f.write("{not json")
    assert teacher_cache.lookup(str(tmp_path), key) is None
