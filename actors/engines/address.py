"""Check a Ray cluster address before anything starts: well formed, and something answers there.

Ray itself waits minutes for a GCS that is not there (``--address 127.0.0.1:1``) and fails with an
internal error on a malformed one; this check turns both into a one-line bad-input error (exit 2)
with a hint, within ``CONNECT_TIMEOUT_S``.
"""

from __future__ import annotations

import os
import socket

from disagg.cluster.errors import ConfigError

CONNECT_TIMEOUT_S = 10.0  # wall seconds to wait for the cluster's GCS port to accept a connection
HINT = ("start a cluster with `ray start --head` and pass the address it prints (HOST:6379), or "
        "leave --address and RAY_ADDRESS unset for an embedded local Ray")


def use_token_auth_for_embedded_ray() -> None:
    """Before starting an embedded local Ray: choose token authentication explicitly (what Ray
    2.60 does by default for a local cluster, but then with a warning on every run). Ray creates
    the token in ``~/.ray/auth_token`` if there is none. An explicit ``RAY_AUTH_MODE`` is kept.
    Ray caches its config when imported, so it is re-read after setting the mode (as Ray's own
    ``_enable_token_auth`` does)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    # imported here, not at the top: the CLI checks addresses without importing Ray
    from ray._raylet import Config  # type: ignore[attr-defined]

    Config.initialize("")


def resolve_address(address: str | None) -> tuple[str | None, str]:
    """The address to join (``--address``, else ``RAY_ADDRESS``, else None) and where it came
    from (for messages)."""
    if address:
        return address, "--address"
    env = os.environ.get("RAY_ADDRESS")
    return (env, "RAY_ADDRESS") if env else (None, "")


def check_address(address: str | None) -> None:
    """ConfigError unless ``address`` (or ``RAY_ADDRESS``) is empty, ``auto``, or a reachable
    ``HOST:PORT`` / ``ray://HOST:PORT``. ``auto`` is resolved by Ray (see ``ray_start._init``)."""
    address, what = resolve_address(address)
    if not address or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65_536 or \
            any(c.isspace() for c in host):
        raise ConfigError(f"{what}: value {address!r} is not a Ray address; allowed: auto, "
                          "HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise ConfigError(f"{what}: value {address!r}: no Ray cluster answers there ({why}); "
                          f"hint: {HINT}") from None
