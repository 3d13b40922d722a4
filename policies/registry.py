"""Registries of policies by name: raise on duplicates, explain unknown names, load dotted paths.

A factory is a class (usually a dataclass) built as ``factory(**params)``; if its ``__init__``
accepts a ``context`` keyword, it receives the :class:`PolicyContext`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from disagg.cluster.errors import ConfigError
from disagg.policies.base import PolicyContext

T = TypeVar("T")


class UnknownPolicy(ConfigError):
    """A policy name that no registry entry or importable dotted path matches."""


class DuplicatePolicy(RuntimeError):
    """Two registrations under one name."""


class Registry(Generic[T]):
    """Name -> factory for one kind of policy; ``role`` (the kind's Protocol, e.g.
    :class:`RouterPolicy`) names the methods a dotted-path class must have."""

    def __init__(self, kind: str, role: type | None = None) -> None:
        self.kind = kind
        self.methods = _protocol_methods(role) if role is not None else ()
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name``; a second registration raises."""

        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise DuplicatePolicy(f"{self.kind} policy {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self._factories)

    def factory(self, name: str) -> Callable[..., T]:
        """The factory for ``name``, or for a dotted path ``package.module.Class``."""
        if name in self._factories:
            return self._factories[name]
        if "." in name or ":" in name:
            return _checked(_import(name, self.kind), name, self.kind, self.methods)
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownPolicy(
            f"unknown {self.kind} policy {name!r}; known: {', '.join(self.names())}{hint}"
        )

    def create(self, name: str, params: dict[str, Any], context: PolicyContext) -> T:
        """Build the policy; unknown or invalid parameters raise :class:`ConfigError`."""
        factory = self.factory(name)
        accepted = _parameters(factory)
        unknown = sorted(set(params) - accepted)
        if unknown:
            allowed = ", ".join(sorted(accepted - {"context"})) or "none"
            raise ConfigError(
                f"{self.kind} policy {name!r}: unknown parameter {unknown[0]!r} "
                f"(allowed: {allowed})"
            )
        for key, value in params.items():
            _check_type(factory, key, value, f"{self.kind} policy {name!r}")
        kwargs = dict(params)
        if "context" in accepted:
            kwargs["context"] = context
        try:
            return factory(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{self.kind} policy {name!r}: {e}") from None


_SIMPLE: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,),
                                        "str": (str,)}


def _check_type(factory: Callable[..., Any], key: str, value: Any, what: str) -> None:
    """ConfigError naming ``key`` if ``value`` does not have the parameter's declared simple type
    (int, float, bool, str, optionally ``| None``); other annotations are left to the factory."""
    try:
        hints = typing.get_type_hints(factory)
    except (NameError, TypeError):
        return
    hint = hints.get(key)
    if hint is None:
        return
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) \
        else (hint,)
    names = [getattr(a, "__name__", str(a)) for a in args]
    if value is None and "NoneType" in names:
        return
    allowed = [t for n in names for t in _SIMPLE.get(n, ())]
    if len(allowed) == 0 or any(n not in _SIMPLE and n != "NoneType" for n in names):
        return
    if isinstance(value, bool) and bool not in allowed or not isinstance(value, tuple(allowed)):
        expected = " or ".join(n for n in names if n != "NoneType")
        raise ConfigError(f"{what}: parameter {key!r}: value {value!r} is not allowed: "
                          f"expected {expected}")


def _parameters(factory: Callable[..., Any]) -> set[str]:
    if dataclasses.is_dataclass(factory):
        return {f.name for f in dataclasses.fields(factory) if f.init}
    return {p for p in inspect.signature(factory).parameters if p != "self"}


def _import(path: str, kind: str) -> Callable[..., Any]:
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError, ValueError) as e:
        raise UnknownPolicy(f"{kind} policy {path!r} cannot be imported: {e}") from None


def _protocol_methods(role: type) -> tuple[str, ...]:
    """The public methods a Protocol declares (what a policy of that role must implement)."""
    return tuple(sorted(n for n, v in vars(role).items()
                        if callable(v) and not n.startswith("_")))


def _checked(found: Any, path: str, kind: str, methods: tuple[str, ...]) -> Callable[..., Any]:
    """``found`` if it is a class with every method of the role, else :class:`UnknownPolicy`.

    Checked without calling ``found``: a dotted path naming a function (``sys.exit``,
    ``os.abort``) is refused before anything runs, never called."""
    needs = f"allowed: a class with method{'s' if len(methods) > 1 else ''} " \
            f"{', '.join(methods)}" if methods else "allowed: a policy class"
    if not inspect.isclass(found):
        what = "function" if inspect.isroutine(found) else type(found).__name__
        raise UnknownPolicy(f"{kind} policy {path!r} is a {what}, not a policy class; {needs}")
    missing = [m for m in methods if not callable(getattr(found, m, None))]
    if missing:
        raise UnknownPolicy(f"{kind} policy {path!r} is a class without method {missing[0]!r}; "
                            f"{needs}")
    return found  # type: ignore[no-any-return]
