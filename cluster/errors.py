"""Typed errors and the one-line description of a config validation failure."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """Bad user input: the message names the field, the value and what is allowed (exit 2)."""


class CapacityExceeded(RuntimeError):
    """A unit was asked to hold more than it can (a bug in a policy or a unit)."""


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the last element of ``loc``, if it can be found."""
    model: type[BaseModel] | None = root
    for key in loc[:-1]:
        if model is None or not isinstance(key, str) or key not in model.model_fields:
            return None
        annotation = model.model_fields[key].annotation
        candidates = [a for a in typing.get_args(annotation) or (annotation,)
                      if isinstance(a, type) and issubclass(a, BaseModel)]
        model = candidates[0] if len(candidates) == 1 else None
    return model


def describe_validation_error(err: ValidationError, root: type[BaseModel]) -> str:
    """One line for the first error: ``field 'a.b': value X — what is allowed``."""
    # a misspelt key explains the "missing" error that comes with it: report it first
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.endswith("]")))
    field = ".".join(str(p) for p in loc) or "(top level)"
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        owner = _model_at(root, loc)
        allowed = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"field {field!r} is not allowed{hint} (allowed: {', '.join(allowed)})"
    if first["type"] == "missing":
        return f"field {field!r} is required but missing"
    msg = first["msg"].removeprefix("Value error, ")
    shown = repr(value) if not isinstance(value, dict) else "(table)"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"field {field!r}: value {shown} is not allowed: {msg}{more}"
