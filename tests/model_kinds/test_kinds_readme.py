"""The README's "Works with" table says what this suite checks, cell for cell."""

import pathlib

from kinds import CHEAP, KINDS
from test_kinds_export import PENDING, QUANTIZED_KINDS, REFUSED
from test_kinds_fit import FEATURE_REFUSALS, WEIGHT_CELLS
from test_kinds_prune import LEGACY_PRUNE_REFUSALS, PRUNE_REFUSALS

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
LABELS = {
    "sequential_input": "Sequential with `Input`",
    "sequential_called": "Sequential, no `Input`, called once",
    "sequential_bare": "Sequential, no `Input`, never called",
    "functional": "functional",
    "two_inputs_list": "two inputs (list)",
    "two_inputs_dict": "two inputs (dict)",
    "nested": "nested sub-model",
    "subclassed": "subclassed",
    "text": "text: `Embedding(mask_zero=True)`, LSTM student",
    "regression": "regression (`LogitMSE`)",
    "applications": "`keras.applications`: EfficientNetB0 → MobileNetV3Small, 32×32",
    "bert": "keras-hub `BertBackbone` (Keras 3)",
    "mixed_precision": "mixed-precision CNN",
}
NOT_RUN = "—³"


def expected_row(name):
    cheap = name in CHEAP
    offline_weights = {n for n, offline in WEIGHT_CELLS if offline}
    weights = "✓" if name != "regression" else "sample only"
    if name in offline_weights:
        weights += ", offline"
    if name in PENDING:
        tflite = "pending²"
    elif name in QUANTIZED_KINDS:
        refused = [mode for kind, mode in REFUSED if kind == name]
        tflite = f"all but {', '.join(refused)} (refused¹)" if refused else "all 4"
    else:
        tflite = "none"
    if name in PRUNE_REFUSALS:
        prune = "refused¹"
    elif name in LEGACY_PRUNE_REFUSALS:
        prune = "✓ (tf_keras: refused¹)"
    else:
        prune = "✓" if cheap else NOT_RUN
    return [
        LABELS[name],
        "✓",
        "✓" if cheap else NOT_RUN,
        ("refused¹" if name in FEATURE_REFUSALS else "✓") if cheap else NOT_RUN,
        "✓" if cheap else NOT_RUN,
        weights if cheap else NOT_RUN,
        "✓",
        tflite,
        prune,
    ]


def readme_rows():
    section = README.read_text().split("### Works with", 1)[1].split("\n#", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("| ")][1:]  # past the header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_readme_table_equals_the_suite():
    assert readme_rows() == [expected_row(name) for name in KINDS]
