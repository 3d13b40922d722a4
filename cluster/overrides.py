"""Dotted-key overrides of an experiment's raw config (``--set KEY=VALUE``, ``--rate``), applied
to the TOML dict before validation, so a bad value is refused with the key's name like a value
written in the file."""

from __future__ import annotations

import tomllib
from typing import Any

from disagg.cluster.errors import ConfigError


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as config overrides: VALUE parsed as a TOML value (``8``, ``0.5``,
    ``true``, ``"x"``, ``[1, 2]``, ``{ kind = "fixed", value = 8 }``); a VALUE that is not TOML
    is taken as a string (``model=llama-2-70b``). Later pairs win."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: allowed: KEY=VALUE, KEY a dotted config path "
                              "(e.g. workload.rate_per_s=4)")
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text.strip()
    return out


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Set each dotted key in ``raw`` in place. A catalog name on the way (``model =
    "llama-2-70b"`` under ``model.max_context_tokens``) becomes that entry as a base with the
    override on top; any other non-table on the way is refused naming the key."""
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            child = node.setdefault(key, {})
            if isinstance(child, str):
                child = node[key] = {"base": child}
            if not isinstance(child, dict):
                where = ".".join(parents[:depth + 1])
                raise ConfigError(f"--set {dotted}: '{where}' is {child!r}, not a table; "
                                  "allowed: a key inside a table of the config")
            node = child
        node[leaf] = value
