"""Kraken v2's book checksum: the documentation's example (data/ws_samples/kraken_v2_book.jsonl), a changed
size, and an update that pushes a level out of the subscribed depth."""

from __future__ import annotations

import json

from ingestor.books import checksum
from tests.unit.ingestor.books_frames import DATA, Frame, run

DOC = (DATA / "ws_samples" / "kraken_v2_book.jsonl").read_text().strip()


def test_the_documented_example_verifies_its_checksum() -> None:
    feed, sink = run("kraken", [Frame("ws", DOC, 1)])
    assert sink.events == [] and feed.counts.checksums == 1
    (snap,) = sink.books
    assert snap.kind == "snapshot" and snap.checksum == 3310070434 and snap.symbol == "BTC-USD"
    assert snap.bids[0] == (45283.5, 0.1) and snap.asks[0] == (45285.2, 0.001)


def test_the_checksum_is_over_the_text_sent_not_a_float() -> None:
    # "0.10000000" and "0.1" are the same float but not the same checksum text.
    assert checksum.kraken([("45283.5", "0.10000000")], []) != checksum.kraken([("45283.5", "0.1")], [])


def test_a_changed_size_fails_the_checksum_and_resubscribes() -> None:
    changed = DOC.replace('"qty":1.54582015', '"qty":1.54582016', 1)
    assert changed != DOC
    _feed, sink = run("kraken", [Frame("ws", changed, 1)])
    assert [e.kind for e in sink.events] == ["checksum_mismatch"] and "3310070434" in sink.events[0].detail
    assert sink.books == [] and sink.resyncs == [("kraken", "BTC/USD")]


def _update(bids: list[tuple[str, str]], asks: list[tuple[str, str]], book_bids: list, book_asks: list) -> str:
    """An update frame as Kraken writes it: prices and quantities as JSON numbers with full precision."""
    def levels(rows: list[tuple[str, str]]) -> str:
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in rows) + "]"
    return ('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":' + levels(bids) + ',"asks":'
            + levels(asks) + f',"checksum":{checksum.kraken(book_bids, book_asks)},'
            '"timestamp":"2026-08-25T00:00:00.123456Z"}]}')


def test_an_update_is_applied_truncated_to_the_depth_and_verified() -> None:
    doc = json.loads(DOC, parse_float=str)["data"][0]
    bids = [(b["price"], b["qty"]) for b in doc["bids"]]
    asks = [(a["price"], a["qty"]) for a in doc["asks"]]
    # A new best bid pushes the 10th bid out of the depth-10 book; an ask is removed.
    new_bids = [("45284.0", "0.50000000"), *bids[:9]]
    new_asks = asks[1:]
    update = _update([("45284.0", "0.50000000")], [("45285.2", "0.00000000")], new_bids, new_asks)
    feed, sink = run("kraken", [Frame("ws", DOC, 1), Frame("ws", update, 2)])
    assert sink.events == [] and feed.counts.checksums == 2
    delta = sink.books[1]
    assert delta.kind == "delta" and delta.seq == 2
    assert (45276.6, 0.0) in delta.bids  # the level cut by the depth, removed for consumers too
    assert delta.ts_event == 1787616000123
