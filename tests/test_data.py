"""The .npz loader: one scaling rule for both splits, checked labels."""

import numpy as np
import pytest

from kdistill import data


def save(tmp_path, x_train, x_test, y_train=None, y_test=None):
    path = tmp_path / "data.npz"
    np.savez(
        path,
        x_train=x_train,
        y_train=np.arange(len(x_train)) % 3 if y_train is None else y_train,
        x_test=x_test,
        y_test=np.arange(len(x_test)) % 3 if y_test is None else y_test,
    )
    return str(path)


def test_npz_splits_on_close_scales_are_scaled_by_one_rule(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.uniform(0, 5, (30, 4, 4)).astype("float32")
    x_test = rng.uniform(0, 0.9, (12, 4, 4)).astype("float32")  # within 10x of x_train
    split = data.load(data_path=save(tmp_path, x_train, x_test))
    # Both splits are divided by 255 (the training split's values exceed 1),
    # not the test split left alone as each split's own rule used to do.
    np.testing.assert_allclose(split.x_test[..., 0], x_test / 255.0, rtol=1e-6)
    train_and_val = np.concatenate([split.x_train, split.x_val])
    assert train_and_val.max() == pytest.approx(float(x_train.max()) / 255.0, rel=1e-6)
    assert split.x_train.shape[1:] == (4, 4, 1) and split.x_train.dtype == np.float32


def test_npz_with_float_labels_that_are_whole_numbers_loads_them_as_integers(tmp_path):
    x = np.zeros((12, 4), "float32")
    split = data.load(data_path=save(tmp_path, x, x, y_train=np.arange(12) % 3 * 1.0))
    assert split.y_test.dtype == np.int64
    assert split.num_classes == 3


def test_npz_with_one_hot_labels_says_to_save_class_indices(tmp_path):
    x = np.zeros((12, 4), "float32")
    path = save(tmp_path, x, x, y_train=np.eye(3)[np.arange(12) % 3])
    with pytest.raises(
        ValueError,
        match=r"data.npz, key y_train: the labels look one-hot "
        r"\(shape \(12, 3\)\). Save class indices instead: y_train.argmax\(-1\)",
    ):
        data.load(data_path=path)
