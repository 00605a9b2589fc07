"""The check every kdistill callback makes of the model it is attached to."""

from kdistill.distiller import Distiller


def require_distiller(model, callback) -> Distiller:
    """Returns `model` if it is a `Distiller`, else raises a clear error."""
    if not isinstance(model, Distiller):
        raise TypeError(
            f"{type(callback).__name__} works with a kdistill.Distiller, but was "
            f"attached to {type(model).__name__}. Pass it in "
            "`distiller.fit(..., callbacks=[...])`."
        )
    return model
