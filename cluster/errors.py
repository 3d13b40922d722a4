"""Typed errors and the one-line description of a config validation failure."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """Bad user input: the message names the field, the value and what is allowed (exit 2)."""


class ComponentFailed(RuntimeError):
    """A component's message handler or task raised: the run ends, naming the component and
    what it raised (``exc_type`` and ``message``, e.g. ``KeyError`` and ``24``)."""

    def __init__(self, name: str, exc_type: str, message: str) -> None:
        super().__init__(f"component {name} failed: {exc_type}: {message}")
        self.name, self.exc_type, self.message = name, exc_type, message

    @classmethod
    def of(cls, name: str, error: BaseException) -> ComponentFailed:
        """The failure of component ``name`` that raised ``error``."""
        return cls(name, type(error).__name__, str(error))

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        # pickled across Ray actors with the constructor's own arguments
        return (type(self), (self.name, self.exc_type, self.message))


class OutputInTheWay(RuntimeError):
    """The output path was taken, by something disagg did not write, while the run went on."""


class OutputWriteError(RuntimeError):
    """Writing the output failed with an OS error (disk full, read-only, quota): names the path
    and the error; the temporary folder has been removed, so nothing partial is left."""

    def __init__(self, path: Path, error: OSError) -> None:
        where = f" ({error.filename})" if error.filename else ""
        super().__init__(f"cannot write '{path}': [Errno {error.errno}] {error.strerror or error}"
                         f"{where}; nothing was written")
        self.path, self.errno = path, error.errno


class CapacityExceeded(RuntimeError):
    """A unit was asked to hold more than it can (a bug in a policy or a unit)."""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (unwrapping unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], type[BaseModel] | None]:
    """``loc`` without union tags (``kind`` values), and the model owning its last element."""
    shown: list[Any] = []
    models: list[type[BaseModel]] = [root]
    owner: type[BaseModel] | None = root
    for key in loc:
        if isinstance(key, int):
            shown.append(key)
            continue
        by_kind = {k: m for m in models if "kind" in m.model_fields
                   for k in typing.get_args(m.model_fields["kind"].annotation)}
        if len(models) > 1 and key in by_kind:
            models = [by_kind[key]]
            continue
        owner = models[0] if len(models) == 1 else None
        shown.append(key)
        fields = owner.model_fields if owner is not None else {}
        models = _models_in(fields[key].annotation) if key in fields else []
    return tuple(shown), owner


def describe_validation_error(err: ValidationError, root: type[BaseModel]) -> str:
    """One line for the first error: ``field 'a.b': value X — what is allowed``."""
    # a misspelt key explains the "missing" error that comes with it: report it first
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc, owner = _walk(root, tuple(p for p in first["loc"]
                                   if not (isinstance(p, str) and p.endswith("]"))))
    field = ".".join(str(p) for p in loc) or "(top level)"
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        allowed = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"field {field!r} is not allowed{hint} (allowed: {', '.join(allowed)})"
    if first["type"] == "missing":
        return f"field {field!r} is required but missing"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "finite_number":  # nan or inf: not "should be <= max"
        msg = "must be a finite number"
    if msg.startswith("field '"):  # a model validator that names the nested field itself
        return msg
    shown = repr(value) if not isinstance(value, dict) else "(table)"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"field {field!r}: value {shown} is not allowed: {msg}{more}"
