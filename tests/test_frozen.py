"""``@frozen`` (cluster/frozen.py) keeps what a frozen slots dataclass gives at run time — equality,
the hash over the fields, repr, ``replace`` and pickling — without the per-field setattr guard.
The oracle is the same class declared with ``dataclass(frozen=True, slots=True)``."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass

from disagg.cluster.frozen import frozen
from disagg.cluster.messages import KvReady, LoadReport, Request
from disagg.cluster.records import PrefillRecord


@frozen
class _Fast:
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Frozen:
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


def test_eq_hash_and_repr_are_frozen_dataclass_ones() -> None:
    for args in [(1,), (2, "y"), (3, "z", (4, 5))]:
        fast, ref = _Fast(*args), _Frozen(*args)
        assert hash(fast) == hash(ref)
        assert repr(fast).removeprefix("_Fast") == repr(ref).removeprefix("_Frozen")
        assert fast == _Fast(*args) and fast != _Fast(99)
    assert not hasattr(_Fast(1), "__dict__")  # slots: no per-instance dict


def test_messages_hash_replace_and_pickle() -> None:
    req = Request(7, 1.5, 100, 20, prefix_hashes=(1, 2))
    assert hash(req) == hash(dataclasses.astuple(req))  # frozen's hash: the tuple of its fields
    assert dataclasses.replace(req, attempt=1) == Request(7, 1.5, 100, 20, prefix_hashes=(1, 2),
                                                          attempt=1)
    kv = KvReady(req, "prefill-0", 1e6, None, 2.0, records=(PrefillRecord(7, 0, 1.5, 2.0, 1e6),))
    report = LoadReport("decode-0", "decode", 1, 2, 3, 4.0, 5.0, 6.0, 7.0,
                        cached_blocks=frozenset({3}))
    for message in (req, kv, report):
        copy = pickle.loads(pickle.dumps(message))
        assert copy == message and type(copy) is type(message)
