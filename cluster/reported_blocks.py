"""The router's copy of each unit's held prefix blocks, kept up to date from its load reports."""

from __future__ import annotations

from collections.abc import Set

from disagg.cluster.block_changes import BlockChanges, apply_steps
from disagg.cluster.prefix_cache import HeldBlocks


class ReportedBlocks:
    """Each unit's held block ids as last reported. A report's :class:`BlockChanges` that follow
    the unit's previous report are applied to the copy in place (a few dozen ids, not the ~1,600
    held), after those of any reports in between the router did not take (dropped, or, on the
    virtual engine, superseded before the router decided); any other report (the first, a fresh
    unit's) replaces the copy, and a plain set (from another process: the ray engine pickles
    reports, and may supersede one not yet sent) is taken as it is."""

    def __init__(self) -> None:
        self._last: dict[str, Set[int]] = {}  # unit -> its last report's ids, as received
        self._ids: dict[str, set[int]] = {}  # unit -> the copy
        self._held: dict[str, HeldBlocks] = {}  # unit -> the copy, wrapped for its views

    def update(self, unit: str, reported: Set[int]) -> Set[int]:
        """The unit's held ids as of ``reported`` (its newest report's), for its view. The copy
        changes in place with the unit's next report, when the router replaces the view: a view
        stands only until its unit's next report."""
        last = self._last.get(unit)
        self._last[unit] = reported
        if type(reported) is not BlockChanges:
            return reported
        if reported is last:  # nothing changed since: the same ids
            return self._held[unit]
        if type(last) is BlockChanges and last.later is reported:
            apply_steps(self._ids[unit], reported.steps)
            return self._held[unit]
        between = _between(last, reported)
        if between is not None:  # reports the router never took (superseded): theirs first
            ids = self._ids[unit]
            for link in between:
                apply_steps(ids, link.steps)
            return self._held[unit]
        ids = self._ids[unit] = set(reported.held())  # a new copy: views made so far keep theirs
        held = self._held[unit] = HeldBlocks(ids)
        return held


def _between(last: Set[int] | None, reported: BlockChanges) -> list[BlockChanges] | None:
    """The reports after ``last`` up to ``reported`` (the same cache's, in order), or None if
    ``reported`` does not follow ``last``."""
    if type(last) is not BlockChanges:
        return None
    between = []
    link = last.later
    while link is not None:
        between.append(link)
        if link is reported:
            return between
        link = link.later
    return None
