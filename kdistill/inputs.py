"""Moved to `kdistill.data_contract`; this name stays for old imports."""

from kdistill.data_contract import check

__all__ = ["check"]
