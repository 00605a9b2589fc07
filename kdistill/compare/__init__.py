"""The main job, `kdistill compare`: which student and which compression to ship.

For one teacher and one dataset, trains students with several compression
strategies, exports each to TFLite, measures the files (accuracy, teacher
agreement, size, latency) and recommends one under the user's budgets.

Modules:
    runner: `run`, the orchestrator.
    run_directory: a run directory's files and settings, guarded against overwriting.
    jobs: runs the (student, strategy) units, here or in worker processes.
    strategies: strategy names, parsed; each strategy owns its losses.
    pareto: the accuracy/size Pareto front and the recommendation.
    report: results.json/.csv, report.md and the Pareto plot.

Example:
    >>> from kdistill import compare
    >>> result = compare.run(dataset="digits", strategy_names=["labels", "kd+int8"],
    ...                      student_widths=[16], output_dir="runs/digits")
    >>> print(result.recommendation["message"])
"""

from kdistill.compare.runner import CompareResult, run

__all__ = [
    "CompareResult",
    "run",
]
