"""Pictures of what a student lost: per class, disagreements, calibration, gallery.

Each function draws one `Explanation` (see `kdistill.analysis.metrics`) into
a PNG file, written atomically, and returns the matplotlib `Figure` (drawn
without pyplot, so no window opens and a user's own backend is left alone).
matplotlib is imported when a plot is drawn, not when kdistill is imported.

Example:
    >>> from kdistill import analysis
    >>> result = analysis.explain_outputs(teacher_logits, student_logits, y_test)
    >>> analysis.plot_reliability(result, "reliability.png")
"""

from __future__ import annotations

import io

import numpy as np

from kdistill import atomic

TEACHER_COLOR, STUDENT_COLOR, AGREEMENT_COLOR = "tab:blue", "tab:orange", "tab:green"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic.write_bytes(path, buffer.getvalue())
    return figure


def plot_per_class(explanation, path: str):
    """Bars per class: teacher accuracy, student accuracy and agreement.

    Args:
        explanation: An `Explanation`.
        path: The PNG file to write.

    Returns:
        The matplotlib `Figure`.
    """
    names = explanation.class_names
    positions = np.arange(len(names))
    figure = _figure(max(6.0, 0.55 * len(names) + 2), 4.2)
    ax = figure.add_subplot()
    series = (
        ("teacher accuracy", explanation.per_class_teacher_accuracy, TEACHER_COLOR),
        ("student accuracy", explanation.per_class_student_accuracy, STUDENT_COLOR),
        ("agreement with teacher", explanation.per_class_agreement, AGREEMENT_COLOR),
    )
    for i, (label, values, color) in enumerate(series):
        ax.bar(positions + (i - 1) * 0.27, np.nan_to_num(values), 0.27, label=label, color=color)
    low = np.nanmin([np.nanmin(values) for _, values, _ in series])
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_xticks(positions, names, rotation=45 if max(map(len, names)) > 3 else 0)
    ax.set_xlabel("true class")
    ax.set_ylabel("share of the class's test samples")
    ax.set_title(
        f"Per class: teacher vs student accuracy, and agreement "
        f"(overall {explanation.teacher_accuracy:.3f} / {explanation.student_accuracy:.3f} / "
        f"{explanation.agreement:.3f})",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def plot_disagreements(explanation, path: str):
    """The disagreements as a matrix: teacher's class (rows) by student's class (columns).

    Args:
        explanation: An `Explanation`.
        path: The PNG file to write.

    Returns:
        The matplotlib `Figure`.
    """
    matrix = explanation.disagreements
    names = explanation.class_names
    size = max(4.5, 0.45 * len(names) + 2)
    figure = _figure(size + 1, size)
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="Reds", vmin=0, vmax=max(1, int(matrix.max())))
    if len(names) <= 20:
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                dark = count > 0.6 * matrix.max()
                ax.text(column, row, str(count), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")  # fmt: skip
    ax.set_xticks(range(len(names)), names, rotation=45 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("student's class")
    ax.set_ylabel("teacher's class")
    ax.set_title(
        f"Where the student disagrees with the teacher ({int(matrix.sum())} of "
        f"{len(explanation.labels)} test samples)",
        fontsize=10,
    )
    figure.colorbar(image, ax=ax, label="samples")
    figure.tight_layout()
    return _save(figure, path)


def plot_reliability(explanation, path: str):
    """Reliability diagrams of teacher and student side by side, with their ECE.

    Each bar is one confidence bin, as tall as the bin's accuracy and
    labelled with its number of samples; a black dash marks the bin's mean
    confidence; on the diagonal, accuracy equals confidence (perfect
    calibration).

    Args:
        explanation: An `Explanation`.
        path: The PNG file to write.

    Returns:
        The matplotlib `Figure`.
    """
    figure = _figure(9.0, 4.8)
    panels = (
        ("teacher", explanation.teacher_reliability, TEACHER_COLOR),
        ("student", explanation.student_reliability, STUDENT_COLOR),
    )
    for i, (name, bins, color) in enumerate(panels):
        ax = figure.add_subplot(1, 2, i + 1)
        width = np.diff(bins.edges)
        centers = bins.edges[:-1] + width / 2
        filled = bins.counts > 0
        ax.bar(centers[filled], bins.accuracy[filled], width[filled], color=color,
               edgecolor="k", linewidth=0.5, label="accuracy in bin")  # fmt: skip
        ax.scatter(centers[filled], bins.confidence[filled], marker="_", s=120, c="k",
                   linewidths=2, label="mean confidence in bin", zorder=3)  # fmt: skip
        for x, count in zip(centers[filled], bins.counts[filled]):
            ax.text(x, 0.01, str(count), ha="center", va="bottom", fontsize=6, rotation=90)
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-1 probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name}: ECE {bins.ece:.4f}", fontsize=10)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    labels = [label.replace("accuracy in bin", "accuracy in bin (samples at its foot)")
              for label in labels]  # fmt: skip
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    figure.suptitle(
        f"Calibration, teacher vs student ({len(explanation.student_reliability.counts)} "
        "equal-width bins)",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(figure, path)


def is_image_batch(x) -> bool:
    """Whether `x` looks like a batch of images: (n, h, w) or (n, h, w, 1 or 3), h, w >= 8."""
    shape = getattr(x, "shape", ())
    if len(shape) == 3:
        return min(shape[1:]) >= 8
    return len(shape) == 4 and min(shape[1:3]) >= 8 and shape[3] in (1, 3)


def plot_gallery(explanation, images, path: str, count: int = 16):
    """The samples where the student disagrees with the teacher, most confident teacher first.

    Each image is captioned with the teacher's and the student's class and
    probability (and the true class).

    Args:
        explanation: An `Explanation`.
        images: The inputs the outputs came from, (n, h, w) or (n, h, w, c)
            with c 1 or 3, values in [0, 1] (or 0-255).
        path: The PNG file to write.
        count: At most this many images.

    Returns:
        The matplotlib `Figure`.

    Raises:
        ValueError: `images` is not a batch of images with one per sample.
    """
    images = np.asarray(images)
    if not is_image_batch(images) or len(images) != len(explanation.labels):
        raise ValueError(
            f"Invalid value for argument `images`: expected {len(explanation.labels)} images "
            f"of shape (height, width) or (height, width, 1 or 3). Received shape {images.shape}."
        )
    chosen = explanation.disagreement_order[:count]
    columns = min(4, max(1, len(chosen)))
    rows = max(1, -(-len(chosen) // columns))
    figure = _figure(2.4 * columns, 2.9 * rows + 0.5)
    names = explanation.class_names
    scale = 255.0 if images.max() > 1.0 else 1.0
    for slot, index in enumerate(chosen):
        ax = figure.add_subplot(rows, columns, slot + 1)
        image = images[index] / scale
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        ax.imshow(np.clip(image, 0, 1), cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
        t, s = explanation.teacher_probs[index], explanation.student_probs[index]
        ax.set_title(
            f"teacher: {names[t.argmax()]} ({t.max():.2f})\n"
            f"student: {names[s.argmax()]} ({s.max():.2f})\n"
            f"true: {names[explanation.labels[index]]}",
            fontsize=8,
        )
        ax.axis("off")
    if not len(chosen):
        ax = figure.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "The student agrees with the teacher on every sample.", ha="center")
    figure.suptitle(
        f"Student disagrees with a confident teacher: {len(chosen)} of "
        f"{len(explanation.disagreement_order)} disagreements, most confident teacher first",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (2.9 * rows + 0.5)))
    return _save(figure, path)
