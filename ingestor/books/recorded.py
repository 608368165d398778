"""Recordings into books: the replay's hook that hands every recorded frame to the venue's book feed.

Websocket frames and the REST depth snapshots recorded beside them (``kind`` ``rest_depth_snapshot``,
with the ``symbol`` they were fetched for) go through the same ``BookFeed`` as live, publishing to
``market.books`` through the replay's producer. A replay cannot fetch a snapshot: a symbol whose book
broke waits for the recording's next one.
"""

from __future__ import annotations

import logging

from ingestor.books.feed import BookFeed, Producing, PublisherSink, has_books
from ingestor.venues.base import VenueSpec

log = logging.getLogger(__name__)


def book_feed(spec: VenueSpec, publisher: Producing) -> BookFeed | None:
    """The venue's book feed publishing through ``publisher``; None for a venue without books."""
    return BookFeed(spec, PublisherSink(publisher)) if has_books(spec) else None


def report(feed: BookFeed | None, name: str) -> None:
    if feed is None:
        return
    c = feed.counts
    log.info("%s books: %d records published (%d snapshots, %d deltas, %d level changes); %d gaps, %d resyncs, "
             "%d checksums verified, %d mismatches, %d crossed, %d updates before a snapshot, %d dead-lettered.",
             name, c.updates, c.snapshots, c.deltas, c.levels, c.gaps, c.resyncs, c.checksums,
             c.checksum_mismatches, c.crossed, c.unsynced, feed.dead_lettered)
