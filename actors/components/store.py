"""Where KV payloads live between the prefill and decode units.

The virtual engine keeps payloads in process (the reference is the payload); the ray engine puts
them in Ray's object store once and passes the reference (see ``ray_engine.RayStore``).
"""

from __future__ import annotations

from typing import Any, Protocol


class ObjectStore(Protocol):
    """put a payload once, pass the reference, get it where it is used."""

    def put(self, value: Any) -> Any: ...

    async def get(self, ref: Any) -> Any: ...


class LocalStore:
    """In-process store: the reference is the object itself."""

    def put(self, value: Any) -> Any:
        return value

    async def get(self, ref: Any) -> Any:
        return ref
