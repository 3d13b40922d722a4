"""KV payloads as real Arrow record batches, checksummed on the prefill side, verified on decode.

One record batch per transfer: a column ``kv`` of per-layer blocks (fixed-size binary), and schema
metadata naming the request, tokens, model, dtype, modeled bytes, real bytes and a CRC-32 of the
blocks. Real bytes = modeled bytes x payload_scale (rounded down to whole per-layer blocks).

The blocks' bytes are random, but not drawn per request: every payload is a zero-copy prefix of one
process-wide, read-only buffer of random bytes (:class:`_BytePool`), whose CRC-32 per prefix length
is computed once. Verification trusts that cached CRC only for a buffer that *is* such a prefix
(same address, same length — a pool is never freed, so no other buffer can take its address); any
other buffer (a payload that crossed Ray's object store, a tampered copy) is checksummed in full.

Where nothing reads the bytes (the virtual engine's in-process store: no serialisation, no copy),
a :class:`KvMarker` stands for the payload: the same request id and real bytes, and an ``intact``
flag a corrupting fault clears, so verification fails for the same reasons at no cost.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import replace

import numpy as np
import pyarrow as pa

from disagg.cluster.frozen import frozen


class PayloadError(Exception):
    """A KV payload that must not be used; ``reason`` is the request's failure reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


_CHECKPOINT_BYTES = 4096  # the pool's running CRC is kept every this many bytes


class _BytePool:
    """Read-only random bytes that payloads are prefixes of, with a running CRC-32 every
    ``_CHECKPOINT_BYTES``, so the CRC of any prefix costs at most one checkpoint's bytes.

    Grows by doubling when a larger payload is asked for; every buffer it ever made is kept alive,
    so no other buffer can ever have the address of one of them.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self._checkpoints: dict[int, tuple[pa.Buffer, list[int]]] = {}  # address -> (buf, crcs)
        self._newest: pa.Buffer | None = None

    def prefix(self, nbytes: int) -> pa.Buffer:
        """A zero-copy buffer of the pool's first ``nbytes`` bytes."""
        newest = self._newest
        if newest is None or newest.size < nbytes:
            size = max(nbytes, 2 * newest.size if newest is not None else 1 << 20)
            newest = pa.py_buffer(self._rng.bytes(size))
            view, crcs = memoryview(newest), [0]
            for start in range(0, size - _CHECKPOINT_BYTES + 1, _CHECKPOINT_BYTES):
                crcs.append(zlib.crc32(view[start:start + _CHECKPOINT_BYTES], crcs[-1]))
            self._checkpoints[newest.address] = (newest, crcs)
            self._newest = newest
        return newest.slice(0, nbytes)

    def crc(self, data: pa.Buffer, nbytes: int) -> int:
        """CRC-32 of the first ``nbytes`` of ``data``: from the checkpoints when ``data`` starts
        at a pool buffer (so holds its bytes), else computed over all the bytes."""
        pooled = self._checkpoints.get(data.address)
        if pooled is None or pooled[0].size < nbytes:
            return zlib.crc32(memoryview(data)[:nbytes])
        k = nbytes // _CHECKPOINT_BYTES
        start = k * _CHECKPOINT_BYTES
        return zlib.crc32(memoryview(pooled[0])[start:nbytes], pooled[1][k])


_POOL = _BytePool()


def _crc(blocks: pa.Array) -> int:
    data = blocks.buffers()[1]
    return _POOL.crc(data, blocks.type.byte_width * len(blocks)) if data else 0


@frozen
class KvMarker:
    """A KV payload without its bytes (prefill -> decode through an in-process store): the
    request it belongs to, the real bytes a payload would hold, and whether it is intact."""

    request_id: int
    real_bytes: int
    intact: bool = True


def make_marker(request_id: int, layers: int, modeled_bytes: float,
                payload_scale: float) -> KvMarker:
    """The marker of the payload :func:`make_payload` would build (same real bytes)."""
    return KvMarker(request_id, int(modeled_bytes * payload_scale) // layers * layers)


def make_payload(
    request_id: int, tokens: int, model: str, kv_dtype_bytes: float, layers: int,
    modeled_bytes: float, payload_scale: float, seed: int = 0,
) -> pa.RecordBatch:
    """A payload of ``modeled_bytes * payload_scale`` real bytes in ``layers`` blocks (``seed``
    is kept for callers; the bytes are the shared pool's, see the module docstring)."""
    block = int(modeled_bytes * payload_scale) // layers
    base, kind = _schema(block)
    data = _POOL.prefix(block * layers)
    blocks = pa.FixedSizeBinaryArray.from_buffers(kind, layers, [None, data])
    meta = {
        b"request_id": str(request_id).encode(), b"tokens": str(tokens).encode(),
        b"model": model.encode(), b"kv_dtype_bytes": str(kv_dtype_bytes).encode(),
        b"modeled_bytes": str(modeled_bytes).encode(), b"real_bytes": str(block * layers).encode(),
        b"crc32": str(_POOL.crc(data, block * layers) if block * layers else 0).encode(),
    }
    return pa.RecordBatch.from_arrays([blocks], schema=base.with_metadata(meta))


@functools.lru_cache(maxsize=4096)
def _schema(block_bytes: int) -> tuple[pa.Schema, pa.DataType]:
    """The payload schema for blocks of ``block_bytes`` (without the per-request metadata), and
    its one column's type."""
    kind = pa.binary(block_bytes)
    return pa.schema([pa.field("kv", kind)]), kind


def real_bytes(payload: pa.RecordBatch | KvMarker) -> int:
    """Bytes of KV blocks the payload really holds (or would hold, for a marker)."""
    if isinstance(payload, KvMarker):
        return payload.real_bytes
    return int(payload.schema.metadata[b"real_bytes"])


def verify_payload(payload: object, request_id: int) -> pa.RecordBatch | KvMarker:
    """Check schema, identity and checksum (a marker: identity and intactness); raise
    :class:`PayloadError` if any is off."""
    if payload is None:
        raise PayloadError("kv_missing", f"no payload for request {request_id}")
    if isinstance(payload, KvMarker):
        if payload.request_id != request_id:
            raise PayloadError("kv_schema", f"payload is for request {payload.request_id!r}")
        if not payload.intact:
            raise PayloadError("kv_checksum", f"checksum mismatch for request {request_id}")
        return payload
    if not isinstance(payload, pa.RecordBatch) or payload.schema.metadata is None:
        raise PayloadError("kv_schema", f"payload of request {request_id} is not a KV batch")
    meta = payload.schema.metadata
    if payload.schema.names != ["kv"] or b"crc32" not in meta:
        raise PayloadError("kv_schema", f"payload of request {request_id} has a wrong schema")
    if int(meta[b"request_id"]) != request_id:
        raise PayloadError("kv_schema", f"payload is for request {meta[b'request_id']!r}")
    if _crc(payload.column(0)) != int(meta[b"crc32"]):
        raise PayloadError("kv_checksum", f"checksum mismatch for request {request_id}")
    return payload


def tamper(payload: pa.RecordBatch | KvMarker) -> pa.RecordBatch | KvMarker:
    """A copy of ``payload`` with one byte flipped (a marker: marked not intact)."""
    if isinstance(payload, KvMarker):
        if not payload.real_bytes:
            raise ValueError("an empty payload cannot be tampered with")
        return replace(payload, intact=False)
    col = payload.column(0)
    data = bytearray(memoryview(col.buffers()[1])[: col.type.byte_width * len(col)])
    if not data:
        raise ValueError("an empty payload cannot be tampered with")
    data[0] ^= 0xFF
    blocks = pa.FixedSizeBinaryArray.from_buffers(col.type, len(col), [None, pa.py_buffer(bytes(data))])
    return pa.RecordBatch.from_arrays([blocks], schema=payload.schema)
