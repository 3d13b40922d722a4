"""A unit's speed over emu time, for injected stragglers: its modeled durations x a factor."""

from __future__ import annotations

import bisect


class SpeedSchedule:
    """Step function of emu time -> slow-down factor (1 = the modeled speed). Changes may arrive
    before their time (the ray engine hands them over early); each applies from its own time."""

    def __init__(self) -> None:
        self.times: list[float] = []  # emu s of each change, ascending (empty: never slowed)
        self._factors: list[float] = []

    def change(self, from_s: float, factor: float) -> None:
        """From emu time ``from_s`` on, modeled durations are multiplied by ``factor``."""
        i = bisect.bisect_right(self.times, from_s)
        self.times.insert(i, from_s)
        self._factors.insert(i, factor)

    def factor_at(self, t: float) -> float:
        """The factor in force at emu time ``t``."""
        if not self.times:  # no straggler (most runs): no search
            return 1.0
        i = bisect.bisect_right(self.times, t)
        return self._factors[i - 1] if i else 1.0

    def next_change_after(self, t: float) -> float | None:
        """Emu time of the first change after ``t``, or None."""
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else None
