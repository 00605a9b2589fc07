"""`PerOutput`: one logit loss per output of a model with several outputs."""

from __future__ import annotations

from kdistill import outputs, targets
from kdistill.backend import keras, tf
from kdistill.losses.base import DistillationLoss, _register, get


@_register("per_output")
class PerOutput(DistillationLoss):
    """One logit loss per output, for teachers and students with several
    outputs (a classification head and a box head, say).

    The per-sample losses of the distilled outputs are summed. A model with
    several outputs needs this wrapper: a plain loss would not say which
    outputs to match.

    Args:
        losses: A list with one loss per output, in the model's output order,
            or a dict from output names to losses (a model built with a dict
            of outputs is named by its keys; one with a list, by its output
            layers). None, or an output left out of the dict, leaves that
            output undistilled. Each loss is a `DistillationLoss` on outputs
            (not a feature loss) or its registry name.

    Example:
        >>> loss = PerOutput({"cls": SoftTargetKD(4.0), "box": LogitMSE()})
        >>> Distiller(teacher, student, loss)  # both models output cls and box
    """

    takes_structures = True

    def __init__(self, losses):
        if isinstance(losses, dict):
            self.losses = {name: _output_loss(l, name) for name, l in losses.items()}
            chosen = list(self.losses.values())
        elif isinstance(losses, (list, tuple)):
            self.losses = [_output_loss(l, i) for i, l in enumerate(losses)]
            chosen = self.losses
        else:
            raise TypeError(
                "Invalid value for argument `losses`: expected a list (one loss "
                "per output) or a dict from output names to losses. Received: "
                f"losses={losses!r}"
            )
        if all(l is None for l in chosen):
            raise ValueError(
                "Invalid value for argument `losses`: every output is None, so "
                "nothing would be distilled. Give at least one output a loss."
            )
        self.needs_labels = any(l.needs_labels for l in chosen if l is not None)
        self._by_position = self.losses if isinstance(self.losses, list) else None

    def bind(self, output_names) -> None:
        """Lines the losses up with a model's outputs.

        Args:
            output_names: The model's output names in flat order
                (`kdistill.outputs.names`).

        Raises:
            ValueError: The losses do not match the outputs.
        """
        output_names = list(output_names)
        if isinstance(self.losses, list):
            if len(self.losses) != len(output_names):
                raise ValueError(
                    f"Invalid value for argument `losses` of PerOutput: "
                    f"{len(self.losses)} losses for a model with "
                    f"{len(output_names)} outputs ({', '.join(output_names)}). Pass "
                    "one loss (or None) per output, or a dict keyed by output name."
                )
            return
        self._by_position = outputs.by_name(self.losses, output_names, "losses")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        """Sums the chosen losses over the outputs, per sample.

        Args:
            teacher_outputs: The teacher's logits per output: a list in output
                order, or a dict keyed by output name.
            student_outputs: The student's, in the same structure.
            y_true: The labels in the same structure (for losses that need
                them), or None.
        """
        if isinstance(student_outputs, dict):
            if not isinstance(self.losses, dict):
                raise ValueError(
                    "PerOutput built from a list takes outputs as a list; for "
                    "outputs in a dict, key the losses by output name."
                )
            chosen = list(self.losses.items())
        else:
            if self._by_position is None:
                raise ValueError(
                    "PerOutput built from a dict takes outputs in a dict keyed by "
                    "name, unless a Distiller has lined it up with a model's outputs."
                )
            chosen = list(enumerate(self._by_position))
        terms = []
        for key, loss in chosen:
            if loss is None:
                continue
            labels = targets.label_for(y_true, key)
            if loss.needs_labels and labels is None:
                raise ValueError(
                    f"{type(loss).__name__} on output {key!r} needs that output's true "
                    "labels: pass them in y (in output order, or keyed by output name)."
                )
            terms.append(loss.per_sample(teacher_outputs[key], student_outputs[key], labels))
        return tf.add_n(terms)

    def combine_teachers(self, teacher_logits, weights):
        raise ValueError(
            "PerOutput does not combine a teacher ensemble: distil a model with "
            "several outputs from one teacher."
        )

    @property
    def temperature_variables(self) -> list:
        chosen = self.losses.values() if isinstance(self.losses, dict) else self.losses
        return [v for l in chosen if l is not None for v in l.temperature_variables]

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        if isinstance(self.losses, dict):
            return {"losses": {k: serialize(l) for k, l in self.losses.items()}}
        return {"losses": [serialize(l) for l in self.losses]}

    @classmethod
    def from_config(cls, config):
        deserialize = keras.saving.deserialize_keras_object
        losses = config["losses"]
        if isinstance(losses, dict):
            return cls({k: deserialize(l) for k, l in losses.items()})
        return cls([deserialize(l) for l in losses])


def _output_loss(loss, where):
    if loss is None:
        return None
    loss = get(loss)
    if loss.uses_features or isinstance(loss, PerOutput):
        raise ValueError(
            f"Invalid value for argument `losses` of PerOutput at {where!r}: "
            f"{type(loss).__name__} is not a loss on one output. Pass feature "
            "losses to the Distiller beside the PerOutput loss."
        )
    return loss
