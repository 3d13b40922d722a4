"""A request's facts inside a unit while it is there: one typed draft per request (never a dict
with string keys), turned into the unit's typed records (``cluster/records.py``) when it ends."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.records import DecodeRecord, PrefillRecord


@dataclass(slots=True)
class RequestDraft:
    """What a decode or colocated unit knows of one request so far (emu s; None: not yet).

    ``late``: its input reached the unit after the unit committed past its modeled arrival
    (lag, ray engine) — the only kind of request the time gate may join at a past boundary."""

    prefill_start_s: float | None = None
    first_token_s: float | None = None
    decode_start_s: float | None = None
    first_decode_token_s: float | None = None
    last_token_s: float | None = None
    real_bytes: int | None = None
    real_end_s: float | None = None
    late: bool = False
    preemptions: int = 0  # times the unit preempted it (paged KV)

    def decode_record(self, request_id: int, attempt: int) -> DecodeRecord:
        """The unit's ``DecodeRecord`` of the request."""
        return DecodeRecord(request_id, attempt, self.decode_start_s, self.first_decode_token_s,
                            self.last_token_s, self.real_bytes, self.real_end_s,
                            self.preemptions)

    def prefill_record(self, request_id: int, attempt: int) -> PrefillRecord:
        """A colocated unit's ``PrefillRecord`` of the request (its prefill has ended)."""
        assert self.prefill_start_s is not None and self.first_token_s is not None
        return PrefillRecord(request_id, attempt, self.prefill_start_s, self.first_token_s, None)
