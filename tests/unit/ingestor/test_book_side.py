"""A book side against a plain dict sorted on every read: the same levels, best first, after any changes
(prices that come back, the best removed, truncation)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.book import BookSide

prices = st.integers(1, 400).map(lambda i: i / 4)
sizes = st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.25])
frames = st.lists(st.lists(st.tuples(prices, sizes), max_size=60), max_size=40)
reads = st.lists(st.sampled_from(["best", "top3", "all", "truncate"]), min_size=40, max_size=40)


def _expected(levels: dict[float, float], descending: bool, n: int | None = None) -> list[tuple[float, float]]:
    return sorted(levels.items(), reverse=descending)[:n]


@settings(max_examples=200, deadline=None)
@given(frames, reads, st.booleans())
def test_a_side_holds_what_a_sorted_dict_holds(changes: list[list[tuple[float, float]]], after: list[str],
                                                descending: bool) -> None:
    side = BookSide(descending)
    plain: dict[float, float] = {}
    for levels, read in zip(changes, after, strict=False):
        side.update(levels)
        for price, size in levels:
            if size == 0.0:
                plain.pop(price, None)
            else:
                plain[price] = size
        if read == "best":
            want = _expected(plain, descending, 1)
            assert side.best() == (want[0][0] if want else None)
        elif read == "top3":
            assert side.top(3) == _expected(plain, descending, 3)
        elif read == "truncate":
            side.truncate(50)
            plain = dict(_expected(plain, descending, 50))
        assert side.top() == _expected(plain, descending)
        assert len(side) == len(plain)

