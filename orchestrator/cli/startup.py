"""What the `deploy` process settles before it imports a command: no pydantic plugins.

pydantic looks for plugins (validation hooks that observability tools register as `pydantic`
entry points) when it builds its first schema. Its loader module imports `importlib.metadata`
at the top, which brings `email`, `zipfile` and `csv`, then reads the metadata of every
installed distribution: about 20 ms on a 2-core VM, a sixth of what a dry run spends beyond
its libraries. The command line validates only its own inputs and catalog, so it runs as
pydantic's documented `PYDANTIC_DISABLE_PLUGINS=__all__` would have it: no plugins. That
answer is given in place of the loader module, so `importlib.metadata` is never imported.

A user who wants pydantic plugins in `deploy` sets `PYDANTIC_DISABLE_PLUGINS` (to the empty
string for all of them): any value there leaves pydantic to read it itself. Only the CLI's entry
point does this; a program that imports `orchestrator` as a library keeps pydantic's default.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterable

PLUGIN_LOADER = "pydantic.plugin._loader"
DISABLE_VARIABLE = "PYDANTIC_DISABLE_PLUGINS"


def skip_pydantic_plugins() -> bool:
    """Answer pydantic's plugin lookup with no plugins, without its loader; False if left alone
    (the user set `PYDANTIC_DISABLE_PLUGINS`, or the loader is already imported)."""
    if DISABLE_VARIABLE in os.environ or PLUGIN_LOADER in sys.modules:
        return False
    sys.modules[PLUGIN_LOADER] = _NoPluginLoader(PLUGIN_LOADER)
    return True


def _no_plugins() -> Iterable[object]:
    return ()


class _NoPluginLoader(types.ModuleType):
    """Stands for pydantic's loader module: `get_plugins()` finds none. Any other name a pydantic
    release asks the loader for imports the real module in its place, so a release that uses
    more of it works as if nothing had been done."""

    def __init__(self, name: str) -> None:
        super().__init__(name, __doc__)
        self.get_plugins = _no_plugins

    def __getattr__(self, attribute: str) -> object:
        import importlib

        if attribute.startswith("__"):
            # The import system probes modules for `__path__` and the like: a plain module.
            raise AttributeError(attribute)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)
