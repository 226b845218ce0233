"""Versions of the hardware documents `deploy` reads and writes.

Cluster files and node inventories share one schema version. The numbers live apart from the
inventory's pydantic models so that reading a cluster file of `gpus:` shorthands (the common
case, and every `deploy plan --cluster`) does not build those models.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
INVENTORY_KIND = "node-inventory"
