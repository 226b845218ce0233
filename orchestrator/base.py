"""The strict pydantic base of every model in the package.

Unknown fields are errors, so a typo in a profile, a cluster file or a plan.json is named
instead of ignored; schemas are built on first use (`defer_build`), so importing a module that
defines models costs little on the `deploy plan` path. `Frozen` adds immutability for
catalog facts that are shared between lookups.
"""

# No `from __future__ import annotations`: pydantic would evaluate the annotation strings of
# every subclass when it is created.

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
