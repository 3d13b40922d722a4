"""KV payloads as real Arrow record batches, checksummed on the prefill side, verified on decode.

One record batch per transfer: a column ``kv`` of per-layer blocks (fixed-size binary), and schema
metadata naming the request, tokens, model, dtype, modeled bytes, real bytes and a CRC-32 of the
blocks. Real bytes = modeled bytes x payload_scale (rounded down to whole per-layer blocks).
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa


class PayloadError(Exception):
    """A KV payload that must not be used; ``reason`` is the request's failure reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _crc(blocks: pa.Array) -> int:
    data = blocks.buffers()[1]
    return zlib.crc32(memoryview(data)[: blocks.type.byte_width * len(blocks)]) if data else 0


def make_payload(
    request_id: int, tokens: int, model: str, kv_dtype_bytes: float, layers: int,
    modeled_bytes: float, payload_scale: float, seed: int = 0,
) -> pa.RecordBatch:
    """A payload of ``modeled_bytes * payload_scale`` real bytes in ``layers`` blocks."""
    block = int(modeled_bytes * payload_scale) // layers
    rng = np.random.default_rng([seed, request_id])
    raw = rng.bytes(block * layers)
    blocks = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(block), layers, [None, pa.py_buffer(raw)]
    )
    meta = {
        "request_id": str(request_id), "tokens": str(tokens), "model": model,
        "kv_dtype_bytes": str(kv_dtype_bytes), "modeled_bytes": str(modeled_bytes),
        "real_bytes": str(block * layers), "crc32": str(_crc(blocks)),
    }
    schema = pa.schema([pa.field("kv", pa.binary(block))], metadata=meta)
    return pa.RecordBatch.from_arrays([blocks], schema=schema)


def real_bytes(payload: pa.RecordBatch) -> int:
    """Bytes of KV blocks the payload really holds."""
    return int(payload.schema.metadata[b"real_bytes"])


def verify_payload(payload: object, request_id: int) -> pa.RecordBatch:
    """Check schema, identity and checksum; raise :class:`PayloadError` if any is off."""
    if payload is None:
        raise PayloadError("kv_missing", f"no payload for request {request_id}")
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


def tamper(payload: pa.RecordBatch) -> pa.RecordBatch:
    """A copy of ``payload`` with one byte flipped (for tests of verification)."""
    col = payload.column(0)
    data = bytearray(memoryview(col.buffers()[1])[: col.type.byte_width * len(col)])
    if not data:
        raise ValueError("an empty payload cannot be tampered with")
    data[0] ^= 0xFF
    blocks = pa.FixedSizeBinaryArray.from_buffers(col.type, len(col), [None, pa.py_buffer(bytes(data))])
    return pa.RecordBatch.from_arrays([blocks], schema=payload.schema)
