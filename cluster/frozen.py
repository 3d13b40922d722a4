"""The decorator for the immutable value classes every message and wake-up carries: messages
(``cluster/messages.py``), per-request records (``cluster/records.py``), policy views and
decisions (``policies/base.py``).

``@frozen`` is ``@dataclass(frozen=True, slots=True)`` for the type checker (``dataclass_transform``
with ``frozen_default``: mypy rejects any assignment to a field) and, at run time, a slots dataclass
with the same ``__eq__``, ``__hash__`` (over the fields, as frozen's) and ``__repr__`` but without
frozen's ``__setattr__`` guard. The guard makes ``__init__`` set each field through
``object.__setattr__``: ~0.9 us for an 8-field message against ~0.25 us for a plain slots
``__init__``, and the virtual engine builds about a dozen such objects per request. Immutability is
therefore checked by mypy (``.ci/typecheck``), not at run time; nothing may rely on
``FrozenInstanceError`` being raised. ``dataclasses.replace`` and pickling (Ray) work as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def frozen(cls: type[T]) -> type[T]:
    """``cls`` as an immutable slots dataclass (immutability checked statically; see the module
    docstring for why not at run time)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
