"""Fresh book snapshots for a live feed or a recorder: the REST snapshot (Binance) or a resubscribe.

When a symbol's sync asks for a snapshot (at its start, after a gap or a bad checksum), a venue with
a REST snapshot has it fetched on a thread of its own (the socket and the worker never wait on it) and
handed back as a ``rest_depth_snapshot`` frame with its symbol; a failed fetch is retried with backoff
until it succeeds or the feed stops. A venue that sends its snapshot on the websocket gets the
symbol's book unsubscribed and subscribed again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from contracts.errors import SettingsError
from contracts.timeutil import now_ms
from ingestor.venues.base import VenueSpec

log = logging.getLogger(__name__)

REST_KIND = "rest_depth_snapshot"


def with_snapshot_address(spec: VenueSpec, url: str | None, rest_url: str | None) -> VenueSpec:
    """The venue with its REST snapshot address replaced by ``rest_url`` (``{symbol}`` filled in), or, when
    the websocket was moved elsewhere (``url``) without one, with none: a book is never started from
    the real venue's snapshot and another server's diffs."""
    if rest_url is not None:
        if "{symbol}" not in rest_url:
            raise SettingsError(f"--rest-url {rest_url!r} has no {{symbol}} to put the venue's symbol in")
        return dataclasses.replace(spec, book_snapshot_url=lambda s: rest_url.format(symbol=s))
    if url is not None and spec.book_snapshot_url is not None:
        log.warning("%s: --url without --rest-url, so no REST depth snapshot is fetched and no book published.",
                    spec.name)
        return dataclasses.replace(spec, book_snapshot_url=None)
    return spec


class SnapshotRequests:
    """``resync(exchange, venue_symbol)`` for a live book feed."""

    def __init__(self, spec: VenueSpec, deliver: Callable[[str, int, str], None], send: Callable[[str], bool],
                 stop: threading.Event, timeout_s: float = 10.0, retry_s: float = 2.0) -> None:
        self.spec = spec
        self.deliver = deliver  # (raw snapshot, receive time ms, venue symbol)
        self.send = send
        self.stop = stop
        self.timeout_s = timeout_s
        self.retry_s = retry_s

    def resync(self, exchange: str, venue_symbol: str) -> None:
        if self.spec.book_snapshot_url is not None:
            url = self.spec.book_snapshot_url(venue_symbol)
            threading.Thread(target=self._fetch, args=(url, venue_symbol), name=f"{exchange}-snapshot-{venue_symbol}",
                             daemon=True).start()
        elif self.spec.book_resubscribe is None:
            log.warning("%s %s needs a REST snapshot and has no address to fetch it from.", exchange, venue_symbol)
        else:
            log.info("%s %s: resubscribing its book for a fresh snapshot.", exchange, venue_symbol)
            for text in self.spec.book_resubscribe(venue_symbol):
                if not self.send(text):
                    log.warning("%s %s: not connected; the next connection subscribes its book afresh.", exchange,
                                venue_symbol)
                    return

    def _fetch(self, url: str, venue_symbol: str) -> None:
        delay = self.retry_s
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                    body = resp.read().decode("utf-8")
            except (urllib.error.URLError, OSError, UnicodeError) as err:
                log.warning("%s %s: the REST snapshot from %s failed (%s); retrying in %.0fs.", self.spec.name,
                            venue_symbol, url, err, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            log.info("%s %s: fetched a REST snapshot (%d bytes).", self.spec.name, venue_symbol, len(body))
            self.deliver(body, now_ms(), venue_symbol)
            return
