"""The one base of the experiment config tree's sections: unknown keys refused, frozen, and no
``nan`` or ``inf`` anywhere (a non-finite number is refused as "must be a finite number")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section (pydantic): ``extra="forbid"``, frozen, finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
