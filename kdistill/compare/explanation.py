"""What the recommended student lost: `kdistill compare`'s explain/ folder.

At the end of a run, the recommended student's `.tflite` file (or, when no
strategy meets the budget, the closest one's) is run on the test split and
compared with the teacher by `kdistill.analysis`: per-class accuracy and
agreement, the disagreement matrix, both models' calibration, and for images
a gallery of the disagreements. The files go to `<output_dir>/explain/`, and
`report.md` links them (`kdistill.compare.report.explanation_links`).
"""

from __future__ import annotations

import os
import shutil

from kdistill import analysis
from kdistill.compare import jobs, pareto

FOLDER = "explain"


def explain_recommendation(out: str, context, records: list, budget, say=print):
    """Writes `<out>/explain/` for the recommended (or closest) student.

    A failure here costs the run nothing it measured: it is reported in one
    line and the report links no explanation.

    Args:
        out: The run's directory.
        context: The run's `kdistill.compare.jobs.Context` (data, teacher
            outputs on the test split, models folder).
        records: The run's records.
        budget: The run's `kdistill.compare.pareto.Budget`.
        say: Prints a line.

    Returns:
        The `kdistill.analysis.Explanation`, or None when there was nothing
        to explain or it failed.
    """
    folder = os.path.join(out, FOLDER)
    shutil.rmtree(folder, ignore_errors=True)  # never keep a previous run's pictures
    pick = pareto.recommend(records, budget)
    record = pick["record"] or pick["closest"]
    if record is None:
        return None
    label = f"{record['strategy']} ({record['student']})"
    name = jobs.model_file(record["strategy"], record["student"])
    path = os.path.join(context.models_dir, name)
    if not os.path.exists(path):
        say(f"Not explaining {label}: its file {path} is gone (removed by an earlier run).")
        return None
    split = context.split
    try:
        outputs = analysis.model_outputs(path, split.x_test)
        result = analysis.explain_outputs(context.teacher_test, outputs, split.y_test)
        role = "recommended" if pick["record"] else "closest to the budget (none meets it)"
        details = {
            "teacher": "the run's teacher (Keras model)",
            "student": f"{label}, {role}: models/{name}",
            "data": f"{split.name}, test split",
        }
        analysis.write_explanation(result, folder, split.x_test, details)
    except (ValueError, RuntimeError, OSError) as error:
        say(f"Could not explain {label}: {type(error).__name__}: {error}")
        return None
    say(
        f"Explained {label} against the teacher: ECE {result.student_ece:.4f} (teacher "
        f"{result.teacher_ece:.4f}), agreement {result.agreement:.4f}; see {folder}/explain.md"
    )
    return result
