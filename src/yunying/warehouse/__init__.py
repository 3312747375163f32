"""The warehouse: engine connections, table contracts, validated import with quarantine.

The names below load on first use (PEP 562), so importing a submodule such as
``yunying.warehouse.contracts`` does not import the engines (ibis, pyarrow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yunying.warehouse.contracts import CONTRACTS, Column, Contract, contract
    from yunying.warehouse.engine import Warehouse, connect

_WHERE = {
    "CONTRACTS": "contracts",
    "Column": "contracts",
    "Contract": "contracts",
    "contract": "contracts",
    "Warehouse": "engine",
    "connect": "engine",
}

__all__ = ["CONTRACTS", "Column", "Contract", "Warehouse", "connect", "contract"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
