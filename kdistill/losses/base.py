"""The base class of the distillation losses and the registry of their names.

A loss class registers under a short name (`get("soft_target")`), which a
config or the command line can use, and with Keras serialization under the
package "kdistill" so saved models find it again.
"""

from __future__ import annotations

from kdistill.backend import register_serializable, tf
from kdistill.losses.functional import average_logits

_REGISTRY: dict[str, type] = {}


def _register(name: str):
    def decorate(cls):
        cls.registry_name = name
        _REGISTRY[name] = cls
        return register_serializable(cls)

    return decorate


class DistillationLoss:
    """Base class: a configured distillation loss over a pure function.

    Subclasses implement `per_sample`. Class attributes tell the `Distiller`
    what a loss needs:

    * `needs_labels`: the loss takes the true labels as a third argument.
    * `uses_features`: the loss compares intermediate layers named by
      `teacher_layers` and `student_layers` instead of the models' outputs.
    * `takes_structures`: the loss takes lists (or dicts) of tensors; others
      refuse them when called, instead of reading the first.
    * `takes_top_k`: the loss trains from a top-k cache of the teacher's
      outputs (`kdistill.cache_teacher_outputs(..., top_k=k)`).
    """

    registry_name = "custom"
    needs_labels = False
    uses_features = False
    takes_structures = False  # lists or dicts of tensors (several outputs or layers)
    takes_top_k = False

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        """Returns the loss of each sample, shape (batch,)."""
        raise NotImplementedError

    def __call__(self, teacher_outputs, student_outputs, y_true=None):
        """Returns the mean loss over the batch (a scalar tensor)."""
        if self.needs_labels and y_true is None:
            raise ValueError(
                f"{type(self).__name__} needs the true labels: call it as "
                "loss(teacher_outputs, student_outputs, y_true)."
            )
        if not self.takes_structures:
            for argument, value in (
                ("teacher_outputs", teacher_outputs),
                ("student_outputs", student_outputs),
            ):
                _check_one_tensor(value, argument, type(self).__name__)
        return tf.reduce_mean(self.per_sample(teacher_outputs, student_outputs, y_true))

    def combine_teachers(self, teacher_logits, weights):
        """Returns the target logits of a teacher ensemble.

        Args:
            teacher_logits: Tensor (batch, teachers, classes).
            weights: One weight per teacher, summing to 1.

        Returns:
            Tensor (batch, classes). By default the weighted mean of the
            logits; losses with a temperature average the softened
            distributions instead.
        """
        return average_logits(teacher_logits, weights)

    @property
    def temperature_variables(self) -> list:
        """Temperature variables a scheduler may assign (none by default)."""
        temperature = getattr(self, "temperature", None)
        return [temperature] if isinstance(temperature, tf.Variable) else []

    def get_config(self) -> dict:
        """Returns the constructor arguments, for Keras serialization."""
        return {}

    @classmethod
    def from_config(cls, config: dict):
        """Builds the loss from what `get_config` returned."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_one_tensor(value, argument: str, loss_name: str) -> None:
    if isinstance(value, (list, tuple, dict)) and any(
        isinstance(v, (list, tuple, dict)) or hasattr(v, "shape") for v in tf.nest.flatten(value)
    ):
        raise ValueError(
            f"Invalid value for argument `{argument}` of {loss_name}. Expected one "
            f"tensor of logits, (batch, classes). Received: a {type(value).__name__} of "
            f"{len(value)} tensors. For a model with several outputs, wrap the loss: "
            f"kdistill.losses.PerOutput([{loss_name}(), ...]), one loss (or None) per output."
        )


def names() -> list[str]:
    """Returns the registry names of the built-in losses."""
    return sorted(_REGISTRY)


def get(identifier, **kwargs) -> DistillationLoss:
    """Returns a distillation loss from a registry name or an instance.

    Args:
        identifier: A `DistillationLoss`, or a registry name such as
            "soft_target" (see `names()`).
        **kwargs: Constructor arguments when `identifier` is a name.

    Returns:
        A `DistillationLoss`.

    Example:
        >>> get("soft_target", temperature=2.0)
        SoftTargetKD(temperature=2.0)
    """
    if isinstance(identifier, DistillationLoss):
        return identifier
    if isinstance(identifier, str) and identifier in _REGISTRY:
        return _REGISTRY[identifier](**kwargs)
    raise ValueError(
        f"Unknown distillation loss {identifier!r}. Valid names: "
        f"{', '.join(names())}; or pass a kdistill.losses.DistillationLoss."
    )
