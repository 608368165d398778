"""OKX's book sync: the 2022 recording's real checksums, a corrupted level, and the seqId chain of the
documentation's example."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.unit.ingestor.books_frames import DATA, OKX, Frame, raw_frames, run

FRAMES = raw_frames(OKX)
DOC = [Frame("ws", line, i)
       for i, line in enumerate((DATA / "ws_samples" / "okx_books.jsonl").read_text().splitlines())]


def _books(frames: list[Frame]) -> list[tuple[int, dict]]:
    out = []
    for i, f in enumerate(frames):
        m = json.loads(f.raw) if f.raw.startswith("{") else {}
        if m.get("arg", {}).get("channel") == "books" and "data" in m:
            out.append((i, m))
    return out


def test_every_non_zero_checksum_of_the_2022_recording_verifies() -> None:
    feed, sink = run("okx", FRAMES)
    books = _books(FRAMES)
    assert all(m["data"][0]["checksum"] != 0 for _, m in books)
    assert feed.counts.checksums == len(books) and feed.counts.checksum_mismatches == 0
    assert sink.events == [] and sink.dead == []
    # Every book frame is published, per symbol in order, with the checksum OKX sent.
    for symbol in ("BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"):
        sent = [m["data"][0]["checksum"] for _, m in books if m["arg"]["instId"] == symbol]
        got = [u.checksum for u in sink.books if u.symbol == symbol]
        assert got == sent
        assert [u.seq for u in sink.books if u.symbol == symbol] == list(range(1, len(sent) + 1))


def test_a_corrupted_level_is_a_checksum_mismatch_and_that_symbol_alone_is_resubscribed() -> None:
    books = [(i, m) for i, m in _books(FRAMES) if m["arg"]["instId"] == "BTC-USDT" and m["action"] == "update"]
    i, m = books[len(books) // 2]
    lv = m["data"][0]["asks"] or m["data"][0]["bids"]
    lv[0][1] = str(Decimal(lv[0][1]) + Decimal("0.5"))
    frames = list(FRAMES)
    frames[i] = Frame("ws", json.dumps(m, separators=(",", ":")), frames[i].recv_ms)
    feed, sink = run("okx", frames)
    assert [(e.symbol, e.kind) for e in sink.events] == [("BTC-USDT", "checksum_mismatch")]
    assert str(m["data"][0]["checksum"]) in sink.events[0].detail
    assert sink.resyncs == [("okx", "BTC-USDT")]
    btc = [u for u in sink.books if u.symbol == "BTC-USDT"]
    assert len(btc) == len(books) // 2 + 1  # the snapshot and the updates before the corrupted one
    _, clean = run("okx", FRAMES)
    for symbol in ("UNI-USD-SWAP", "BTC-USD-220527"):  # the others untouched
        assert [u for u in sink.books if u.symbol == symbol] == [u for u in clean.books if u.symbol == symbol]
    assert feed.counts.checksum_mismatches == 1


def test_the_documented_seq_chain_is_followed_and_a_break_is_a_gap() -> None:
    _, sink = run("okx", DOC)
    assert [(u.kind, u.seq, u.prev_seq) for u in sink.books] == [("snapshot", 123456, None), ("delta", 123457, 123456)]
    assert sink.events == []
    update = json.loads(DOC[3].raw)
    update["data"][0]["prevSeqId"], update["data"][0]["seqId"] = 123460, 123461
    _, sink = run("okx", [*DOC[:3], Frame("ws", json.dumps(update), 9)])
    assert [(e.kind, e.first_missing, e.last_missing) for e in sink.events] == [("book_gap", "123457", "123460")]
    assert [u.seq for u in sink.books] == [123456]


def test_updates_before_the_snapshot_are_not_applied() -> None:
    feed, sink = run("okx", [DOC[3], DOC[2]])
    assert [u.kind for u in sink.books] == ["snapshot"] and feed.counts.unsynced == 1


def test_after_a_mismatch_the_next_snapshot_resyncs_the_symbol() -> None:
    bad = json.loads(DOC[3].raw)
    bad["data"][0]["checksum"] = 12345  # not the book's
    _, sink = run("okx", [*DOC[:3], Frame("ws", json.dumps(bad), 4), DOC[2], DOC[3]])
    assert [e.kind for e in sink.events] == ["checksum_mismatch", "resync"]
    assert [(u.kind, u.seq) for u in sink.books] == [("snapshot", 123456), ("snapshot", 123456), ("delta", 123457)]
