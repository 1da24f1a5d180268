"""Which engines the server can run, found by name or by ``module:Class``.

Built-in engines are listed as import strings and imported only when asked
for, so listing them is cheap and a missing optional engine (say, one whose
module is not installed) fails with a message that says so instead of breaking
every other engine.
"""
from __future__ import annotations

import importlib

from .base import Engine

# name -> "module:Class"; imported lazily by ``get``.
BUILTIN = {
    "preview": "backend.server.engines.preview:PreviewEngine",
    "aa2": "backend.server.engines.aa2:AA2Engine",
    "wan-animate": "backend.server.engines.wan_animate:WanAnimateEngine",
}

_registered: dict[str, type[Engine]] = {}


class EngineNotFound(LookupError):
    """No engine by that name, or its module/class cannot be imported."""


def register(engine_cls: type[Engine]) -> type[Engine]:
    """Make ``engine_cls`` available under ``engine_cls.name``. Usable as a decorator."""
    if not (isinstance(engine_cls, type) and issubclass(engine_cls, Engine)):
        raise TypeError(f"{engine_cls!r} is not an Engine subclass")
    if not engine_cls.name:
        raise ValueError(f"{engine_cls.__qualname__} has no 'name'")
    _registered[engine_cls.name] = engine_cls
    return engine_cls


def names() -> list[str]:
    """Every engine name known without importing anything."""
    return sorted(set(BUILTIN) | set(_registered))


def get(name: str) -> type[Engine]:
    """The engine class registered under ``name`` (importing a built-in on first use)."""
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        return register(_import_class(BUILTIN[name], what=f"built-in engine {name!r}"))
    raise EngineNotFound(f"unknown engine {name!r}; known engines: {', '.join(names())} "
                         f"(or give 'package.module:ClassName')")


def load_spec(spec: str) -> type[Engine]:
    """A registered name, or ``"package.module:ClassName"`` (imported and registered)."""
    if ":" in spec:
        return register(_import_class(spec, what=f"engine {spec!r}"))
    return get(spec)


def _import_class(target: str, *, what: str) -> type[Engine]:
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineNotFound(f"{what} is not available: cannot import {module_name} ({exc})") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise EngineNotFound(f"{what} is not available: {module_name} has no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise EngineNotFound(f"{what}: {target} is not an Engine subclass")
    return cls
