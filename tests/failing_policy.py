"""A test-only decode admission policy that raises, loaded by dotted path
(``failing_policy.RaisingAdmission``) to make a component's handler fail on either engine."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.policies.base import DecodeState, PendingDecode, PolicyContext


@dataclass
class RaisingAdmission:
    """Admits everything pending until request ``fail_at`` is pending, then raises
    ``KeyError(fail_at)`` (as the decode unit's ``_feed_join`` once did)."""

    context: PolicyContext
    fail_at: int = 3

    def admit(self, pending: tuple[PendingDecode, ...], state: DecodeState) -> tuple[int, ...]:
        ids = tuple(p.request.request_id for p in pending)
        if any(i >= self.fail_at for i in ids):
            raise KeyError(self.fail_at)
        return ids
