"""Server-side engine options: how the machine runs an engine, not what a job asks of it.

An engine declares them like its params, as ``ParamSpec``s in
``Engine.server_options`` (memory tier, dtype, fp8 storage, compile...). Whoever
starts the server sets them with ``inhabit serve --engine-option NAME=VALUE``
(repeatable); ``resolve`` checks every assignment once, at start-up, against the
served engines' declarations and fills the defaults. The result lives in
``ServerConfig.engine_options`` ({engine name: {option: value}}) and each engine
instance receives its own dict as ``self.options``. No environment variable is
read: a server's set-up is what its command line says.

An option name applies to every served engine that declares it (``dtype`` for
two engines is one assignment); an option no served engine declares is refused.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from blender_addon.core.protocol import ParamSpec, ProtocolError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class OptionError(ValueError):
    """An ``--engine-option`` cannot be used; the message is one sentence naming it and the fix."""


def split_assignment(text: str) -> tuple[str, str]:
    """``"NAME=VALUE"`` -> (name, value); OptionError otherwise."""
    name, sep, value = str(text).partition("=")
    name = name.strip()
    if not sep or not name:
        raise OptionError(f"--engine-option {text!r} must be NAME=VALUE, e.g. --engine-option memory=full")
    return name, value.strip()


def from_text(spec: ParamSpec, text: str):
    """A command-line string -> the option's value, checked against ``spec``."""
    where = f"--engine-option {spec.name}"
    value: object = text
    if spec.kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise OptionError(f"{where} must be true or false (1/0, yes/no, on/off), got {text!r}")
        value = text.lower() in _TRUE
    elif spec.kind in ("int", "float"):
        try:
            value = int(text) if spec.kind == "int" else float(text)
        except ValueError:
            raise OptionError(f"{where} must be a {'whole ' if spec.kind == 'int' else ''}number, "
                              f"got {text!r}") from None
    try:
        return spec.coerce(value)
    except ProtocolError as exc:
        # coerce speaks of a job's params; the same check, named as the command line names it.
        raise OptionError(str(exc).replace(f"params.{spec.name}", where)) from None


def defaults(specs: Sequence[ParamSpec], given: Mapping | None = None) -> dict:
    """Every declared option's value: ``given`` where set, else the default."""
    given = dict(given or {})
    return {s.name: given.get(s.name, s.default) for s in specs}


def resolve(engine_classes: Iterable, assignments: Sequence[str]) -> dict[str, dict]:
    """{engine name: {option: value}} for ``engine_classes`` with ``assignments``
    ("NAME=VALUE" strings) applied; OptionError on the first one that cannot be."""
    classes = list(engine_classes)
    given: dict[str, dict] = {cls.name: {} for cls in classes}
    for text in assignments:
        name, raw = split_assignment(text)
        owners = [cls for cls in classes if any(s.name == name for s in cls.server_options)]
        if not owners:
            declared = sorted({f"{s.name} ({cls.name})" for cls in classes for s in cls.server_options})
            known = ", ".join(declared) if declared else "none"
            raise OptionError(f"--engine-option {name!r} is not an option of the served engines "
                              f"({', '.join(c.name for c in classes)}); they take: {known}")
        for cls in owners:
            spec = next(s for s in cls.server_options if s.name == name)
            given[cls.name][name] = from_text(spec, raw)
    return {cls.name: defaults(cls.server_options, given[cls.name]) for cls in classes}
