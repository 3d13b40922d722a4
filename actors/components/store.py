"""Where KV payloads live between the prefill and decode units.

The virtual engine keeps payloads in process (the reference is the payload); the ray engine puts
them in Ray's object store once and passes the reference (see ``ray_engine.RayStore``).

``get`` returns the payload itself when it is at hand (the in-process store), else an awaitable
of it (Ray's store); a caller awaits only in the second case, so a payload at hand costs no task.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol


class ObjectStore(Protocol):
    """put a payload once, pass the reference, get it where it is used. ``holds_bytes``: whether
    payloads must carry their bytes (they cross processes and are verified byte for byte);
    False where a :class:`~disagg.fabric.payload.KvMarker` serves as well (nothing reads them)."""

    holds_bytes: bool

    def put(self, value: Any) -> Any: ...

    def get(self, ref: Any) -> Any | Awaitable[Any]: ...


class LocalStore:
    """In-process store: the reference is the object itself; nothing reads a payload's bytes
    here, so units put markers (:class:`~disagg.fabric.payload.KvMarker`) in it."""

    holds_bytes = False

    def put(self, value: Any) -> Any:
        return value

    def get(self, ref: Any) -> Any:
        return ref
