"""The warehouse: engine connections, table contracts, validated import with quarantine."""

from yunying.warehouse.contracts import CONTRACTS, Column, Contract, contract
from yunying.warehouse.engine import Warehouse, connect

__all__ = ["CONTRACTS", "Column", "Contract", "Warehouse", "connect", "contract"]
