"""Check, before Ray starts, that ``disagg serve`` can listen where it is asked to: the host is
an address of this machine and the port is free. A refusal names the option at fault (exit 2)
instead of uvicorn's line many seconds later, after the cluster was built."""

from __future__ import annotations

import errno
import socket

from disagg.cluster.errors import ConfigError


def _addresses(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
    """(family, sockaddr) of every address ``host`` resolves to; ConfigError naming --host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"argument '--host': value {host!r} is not a host name or address "
                          f"({reason}); allowed: an address of this machine, e.g. 127.0.0.1 "
                          "or 0.0.0.0") from None
    return [(info[0], info[4]) for info in infos]


def check_listen(host: str, port: int) -> None:
    """Bind (and release) a socket on ``host``:``port`` as the server will (SO_REUSEADDR, as
    uvicorn sets it); ConfigError naming ``--host`` or ``--port`` and why it cannot."""
    family, addr = _addresses(host, port)[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"argument '--port': value {port} is in use on {host}; "
                                  "allowed: a free port, or 0 for any free one") from None
            if e.errno in (errno.EACCES, errno.EPERM):
                raise ConfigError(f"argument '--port': value {port} needs privileges on {host} "
                                  f"({e.strerror}); allowed: a port >= 1024, or 0") from None
            raise ConfigError(f"argument '--host': value {host!r} is not an address this "
                              f"machine can listen on ({e.strerror}); allowed: an address of "
                              "this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
