"""KV payloads share one pool of random bytes; their checksums stay real and catch corruption."""

from __future__ import annotations

import zlib

import pyarrow as pa
import pytest

from disagg.fabric.payload import (
    KvMarker,
    PayloadError,
    make_marker,
    make_payload,
    real_bytes,
    tamper,
    verify_payload,
)


def _ipc_round_trip(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A copy in fresh memory, as a payload that crossed Ray's object store is."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return pa.ipc.open_stream(sink.getvalue()).read_next_batch()


def _blocks_bytes(batch: pa.RecordBatch) -> bytes:
    col = batch.column(0)
    return bytes(memoryview(col.buffers()[1])[: col.type.byte_width * len(col)])


@pytest.mark.parametrize("tokens", [1, 37, 1000, 8192])
def test_checksum_in_metadata_is_the_crc32_of_the_blocks(tokens: int) -> None:
    modeled = tokens * 327_680.0  # Llama-3.1-70B: 320 KiB of KV per token
    p = make_payload(tokens, tokens, "llama-3.1-70b", 2, 80, modeled, 1e-3)
    block = int(modeled * 1e-3) // 80
    assert len(_blocks_bytes(p)) == block * 80
    assert int(p.schema.metadata[b"crc32"]) == zlib.crc32(_blocks_bytes(p))
    assert verify_payload(p, tokens) is p


def test_a_copy_in_other_memory_is_checked_in_full_and_still_verifies() -> None:
    p = make_payload(3, 1000, "llama-3.1-70b", 2, 80, 327_680_000.0, 1e-3)
    copy = _ipc_round_trip(p)
    assert copy.column(0).buffers()[1].address != p.column(0).buffers()[1].address
    assert verify_payload(copy, 3) is copy


def test_corruption_is_caught_on_pooled_payloads_and_on_copies() -> None:
    p = make_payload(4, 1000, "llama-3.1-70b", 2, 80, 327_680_000.0, 1e-3)
    with pytest.raises(PayloadError) as err:
        verify_payload(tamper(p), 4)
    assert err.value.reason == "kv_checksum"
    with pytest.raises(PayloadError):
        verify_payload(_ipc_round_trip(tamper(p)), 4)
    wrong_meta = dict(p.schema.metadata)
    wrong_meta[b"crc32"] = str((int(wrong_meta[b"crc32"]) + 1) % 2**32).encode()
    relabelled = pa.RecordBatch.from_arrays([p.column(0)], schema=p.schema.with_metadata(wrong_meta))
    with pytest.raises(PayloadError) as err:
        verify_payload(relabelled, 4)
    assert err.value.reason == "kv_checksum"


def test_payloads_larger_than_the_pool_grow_it_and_old_payloads_stay_valid() -> None:
    small = make_payload(5, 10, "m", 2, 4, 4096.0, 1.0)
    big = make_payload(6, 10, "m", 2, 4, 8 * 2**20, 1.0)  # beyond the pool's first 1 MiB
    assert len(_blocks_bytes(big)) == 8 * 2**20
    assert int(big.schema.metadata[b"crc32"]) == zlib.crc32(_blocks_bytes(big))
    assert verify_payload(small, 5) is small
    assert verify_payload(big, 6) is big


def test_marker_stands_for_the_payload_where_nothing_reads_its_bytes() -> None:
    # 1e6 modeled bytes at scale 1e-3 over 80 layers: 1,000 // 80 = 12 bytes a layer, 960 in all
    marker = make_marker(7, 80, 1e6, 1e-3)
    assert marker == KvMarker(7, 960)
    assert real_bytes(marker) == 960 == real_bytes(make_payload(7, 100, "m", 2, 80, 1e6, 1e-3))
    assert verify_payload(marker, 7) is marker
    with pytest.raises(PayloadError) as e:
        verify_payload(tamper(marker), 7)
    assert e.value.reason == "kv_checksum"
    with pytest.raises(PayloadError) as e:
        verify_payload(marker, 8)
    assert e.value.reason == "kv_schema"
    with pytest.raises(ValueError):
        tamper(make_marker(7, 80, 10.0, 1e-3))  # no bytes to flip, as for a real payload
