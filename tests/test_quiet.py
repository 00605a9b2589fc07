import os
import warnings

import pytest

from kdistill import quiet


def test_native_output_is_hidden_in_the_block_and_shown_after_it(capfd):
    os.write(2, b"before\n")
    with quiet.native_logs():
        os.write(2, b"converter chatter\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"


def test_an_error_in_the_block_reaches_the_caller_and_stderr_comes_back(capfd):
    with pytest.raises(RuntimeError, match="TFLite conversion failed: op MatrixInverse"):
        with quiet.native_logs():
            raise RuntimeError("TFLite conversion failed: op MatrixInverse")
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"


def test_warnings_in_the_block_are_issued_after_it_except_the_converters_chatter():
    with pytest.warns(UserWarning) as record:
        with quiet.native_logs():
            warnings.warn("the student has no trainable weights", UserWarning, stacklevel=1)
            warnings.warn(
                "Statistics for quantized inputs were expected, but not specified; "
                "continuing anyway.",
                UserWarning,
                stacklevel=1,
            )
    assert [str(w.message) for w in record] == ["the student has no trainable weights"]
