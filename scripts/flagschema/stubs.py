"""Stand-ins for modules that are not installed (torch, triton, transformers, ...).

An engine's argument parser only needs a few light packages, but the modules that define it
import GPU libraries at module level. A meta-path finder placed last on `sys.meta_path` answers
imports of the names it was told to stand in for with a stub module whose attributes are stub
classes: they can be subclassed (also together with ABCs), called, used as decorators,
subscripted and validated by pydantic. Real installed packages are always found first.

Which names to stub is learnt the way vLLM's own docs generator learns it: build, and when a
`ModuleNotFoundError` escapes, stub that name and build again (`import_with_stubs`). Imports
that the engine itself guards with `try/except ImportError` (platform probes such as
`import libtpu`) stay failing, so the engine takes the same path it takes on a plain CPU box.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import inspect
import sys
import types
from abc import ABCMeta
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Never stubbed (besides the standard library): the parsers validate through pydantic, so a
# stand-in would silently change what they accept; a missing pydantic must fail the build.
_NEVER_STUB = frozenset({"pydantic", "pydantic_core"})


class _StubMeta(ABCMeta):
    """Metaclass of every stub: attribute access and calls yield more stubs."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return make_stub(f"{cls.__qualname__}.{name}", cls.__module__)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not cls.__dict__.get("_is_stub"):
            # An engine class deriving from a stub (`class X(torch.nn.Module)`) is real.
            return super().__call__(*args, **kwargs)
        # A stub called with one function or class is a decorator: keep what it decorates.
        if (
            len(args) == 1
            and not kwargs
            and (inspect.isfunction(args[0]) or inspect.isclass(args[0]))
        ):
            return args[0]
        return make_stub(f"{cls.__qualname__}()", cls.__module__)

    def __getitem__(cls, item: Any) -> Any:
        return cls

    def __iter__(cls) -> Iterator[Any]:
        return iter(())

    def __len__(cls) -> int:
        return 0

    def __bool__(cls) -> bool:
        # `if torch.cuda.is_available():` and friends must take the no-accelerator branch.
        return not cls.__dict__.get("_is_stub")

    def __int__(cls) -> int:
        return 0

    def __index__(cls) -> int:
        return 0

    def __float__(cls) -> float:
        return 0.0

    def __contains__(cls, item: Any) -> bool:
        return False

    def __enter__(cls) -> Any:
        return cls

    def __exit__(cls, *exc: Any) -> None:
        return None

    def _binary(cls, other: Any) -> Any:
        return cls

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _binary
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __pow__ = _binary
    __and__ = __rand__ = __xor__ = __lshift__ = __rshift__ = __neg__ = __invert__ = _binary

    def __lt__(cls, other: Any) -> bool:
        return False

    __le__ = __gt__ = __ge__ = __lt__

    def __repr__(cls) -> str:
        if not cls.__dict__.get("_is_stub"):
            return super().__repr__()
        return f"<stub {cls.__module__}.{cls.__qualname__}>"


class StubBase(metaclass=_StubMeta):
    """Base of every stub class. Engine classes deriving from a stub are instantiated for real;
    attributes their stub base would have provided are stubs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return make_stub(name, type(self).__module__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return type(self)(*args, **kwargs)

    @classmethod
    def __get_pydantic_core_schema__(cls, source_type: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.any_schema()


def make_stub(qualname: str, module: str) -> Any:
    name = qualname.rsplit(".", 1)[-1] or "stub"
    namespace = {"__module__": module, "__qualname__": qualname, "_is_stub": True}
    stub = _StubMeta(name, (StubBase,), namespace)
    return stub


# An override value meaning "this attribute does not exist" (for `hasattr(torch, "npu")` probes).
ABSENT = object()


class StubModule(types.ModuleType):
    """A module whose every missing attribute is a stub class."""

    _absent: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> Any:
        if (name.startswith("__") and name.endswith("__")) or name in self._absent:
            raise AttributeError(name)
        value = make_stub(name, self.__name__)
        setattr(self, name, value)
        return value


class _StubLoader(importlib.abc.Loader):
    def __init__(self, overrides: dict[str, dict[str, Any]]) -> None:
        self.overrides = overrides
        self.versions: dict[str, str] = {}

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = StubModule(spec.name)
        module.__path__ = []
        # `torch.__version__` is parsed at import time by some engines.
        module.__version__ = self.versions.get(_normalise(spec.name), "0.0.0")  # type: ignore[attr-defined]
        attributes = self.overrides.get(spec.name, {})
        module._absent = frozenset(name for name, value in attributes.items() if value is ABSENT)
        for name, value in attributes.items():
            if value is not ABSENT:
                setattr(module, name, value)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class StubFinder(importlib.abc.MetaPathFinder):
    """Last-resort finder: modules named in `names` (and everything under them) become stubs."""

    def __init__(
        self, names: Iterable[str] = (), overrides: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.names: set[str] = set(names)
        self.stubbed: list[str] = []
        self._loader = _StubLoader(overrides or {})

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        top = fullname.split(".", 1)[0]
        if top in _NEVER_STUB or top in sys.stdlib_module_names:
            return None
        parent = sys.modules.get(fullname.rpartition(".")[0])
        wanted = isinstance(parent, StubModule) or any(
            fullname == name or fullname.startswith(name + ".") for name in self.names
        )
        if not wanted:
            return None
        self.stubbed.append(fullname)
        return importlib.machinery.ModuleSpec(fullname, self._loader, is_package=True)


def install(
    pinned_versions: dict[str, str] | None = None,
    names: Iterable[str] = (),
    overrides: dict[str, dict[str, Any]] | None = None,
) -> StubFinder:
    """Put the stub finder last on `sys.meta_path`; answer version look-ups of stubbed packages.

    `overrides` gives stub modules real attributes where a stub class is not good enough
    (module name -> attribute name -> value). Engines compare dependency versions at import
    time; a stubbed package reports the version the engine's own metadata pins (or 0.0.0), so
    those branches take their normal path.
    """
    finder = StubFinder(names, overrides)
    sys.meta_path.append(finder)
    pins = {_normalise(k): v for k, v in (pinned_versions or {}).items()}
    finder._loader.versions = pins
    real_version = importlib.metadata.version

    def version(distribution_name: str) -> str:
        try:
            return real_version(distribution_name)
        except importlib.metadata.PackageNotFoundError:
            return pins.get(_normalise(distribution_name), "0.0.0")

    importlib.metadata.version = version
    return finder


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def import_with_stubs(
    finder: StubFinder, build: Callable[[], T], packages: Sequence[str] = (), max_stubs: int = 300
) -> T:
    """Run `build`; each `ModuleNotFoundError` that escapes adds a stub and runs it again.

    Before a retry the engine's own `packages` are forgotten, so every attempt imports them
    from scratch and no half-initialised module survives a failed attempt.
    """
    for _ in range(max_stubs):
        try:
            return build()
        except ModuleNotFoundError as error:
            if not error.name or error.name in finder.names:
                raise
            finder.names.add(error.name)
            _forget(packages)
    raise ImportError(f"gave up after stubbing {max_stubs} modules: {sorted(finder.names)}")


def _forget(packages: Sequence[str]) -> None:
    for name in list(sys.modules):
        if name.split(".", 1)[0] in packages or isinstance(sys.modules[name], StubModule):
            del sys.modules[name]
