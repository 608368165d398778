"""Is the venue reachable? `tickflow run --live` asks once, in a few seconds, before it starts anything."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 3.0


def venue_problem(url: str) -> str | None:
    """None when a TCP connection to the host of ``url`` (a ws:// or wss:// address) opens, else why not."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return f"{url!r} names no host"
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except socket.gaierror as err:
        return f"cannot resolve {host} ({err.strerror or err}): no internet or no DNS"
    except OSError as err:
        return f"cannot connect to {host}:{port} ({err.strerror or type(err).__name__})"
