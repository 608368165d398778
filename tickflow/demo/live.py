"""The demo's live terminal view (rich): records and rates per topic, the last bar, decisions, book and PnL.

It reads the topics through the live web view's feed and state (tickflow.view), so both views show
the same thing. Without a terminal (or with enabled=False) it prints one plain line every few seconds.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from contracts.timeutil import iso
from tickflow.view.feed import TopicFeed
from tickflow.view.state import ViewState


def _top(book: dict[str, Any] | None) -> str:
    if book is None:
        return "-"
    return f"{book['bid']:,.2f} / {book['ask']:,.2f} ({book['spread_bps']:.3f})"


class LiveBoard:
    def __init__(self, bootstrap: str, enabled: bool = True, interval_s: int | None = None,
                 name: str = "demo") -> None:
        self.name = name
        self.state = ViewState(max_points=10, max_rows=8, interval_s=interval_s)
        self.feed = TopicFeed(bootstrap, self.state)
        self.console = Console()
        self.enabled = enabled and self.console.is_terminal
        self.stage = "starting"
        self._live: Live | None = None
        self._last: tuple[float, dict[str, int]] = (time.monotonic(), {})
        self._rates: dict[str, float] = {}
        self._last_line = 0.0

    def start(self) -> None:
        self.feed.start()
        if self.enabled:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def totals(self) -> tuple[int, ...]:
        return tuple(self.state.counts.values())

    def refresh(self) -> None:
        if self.feed.error is not None:
            raise RuntimeError(f"the demo's topic reader failed: {self.feed.error}")
        now = time.monotonic()
        then, counts = self._last
        if now - then >= 1.0:
            current = dict(self.state.counts)
            self._rates = {k: (v - counts.get(k, 0)) / (now - then) for k, v in current.items()}
            self._last = (now, current)
        if self._live is not None:
            self._live.update(self._render())
        elif now - self._last_line >= 5.0:
            self._last_line = now
            counts_text = ", ".join(f"{k} {v:,}" for k, v in self.state.counts.items())
            print(f"{self.name} [{self.stage}]: {counts_text}", flush=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
        self.feed.stop()

    def _render(self) -> Group:
        snap: dict[str, Any] = self.state.snapshot()
        topics = Table(title="records per topic", expand=True)
        for col in ("topic", "records", "per second"):
            topics.add_column(col, justify="right" if col != "topic" else "left")
        for name, n in snap["counts"].items():
            topics.add_row(name, f"{n:,}", f"{self._rates.get(name, 0.0):,.0f}")
        markets = Table(title="markets", expand=True)
        for col in ("market", "last price", "trades", "bars", "last bar (close, volume)", "features",
                    "bid / ask (spread bps)"):
            markets.add_column(col)
        for m in snap["markets"]:
            bar = m["last_bar"]
            fv = m["features"]
            markets.add_row(m["key"], f"{m['last_price']:,.2f}" if m["last_price"] else "-", f"{m['trades']:,}",
                            f"{m['bars']:,}", f"{iso(bar['window_end'])[:16]} {bar['close']:,.2f} {bar['volume']:,.3f}"
                            if bar else "-",
                            m["warmup"]["text"] if m["warmup"] else ("-" if not fv else "other intervals only"),
                            _top(m["book"]))
        decisions = Table(title="latest decisions", expand=True)
        for col in ("bar end", "symbol", "side", "qty", "target"):
            decisions.add_column(col)
        for o in snap["orders"][:5]:
            decisions.add_row(iso(o["feature_ts"])[:16], o["symbol"], o["side"], f"{o['qty']:.6f}",
                              f"{o['target_position']:.6f}")
        books = Table(title="position and PnL", expand=True)
        for col in ("policy", "positions", "equity", "realised", "unrealised", "fees", "drawdown"):
            books.add_column(col)
        for p in snap["portfolios"]:
            books.add_row(p["policy_id"], ", ".join(f"{k} {v:.6f}" for k, v in p["positions"].items()) or "flat",
                          f"{p['equity']:,.2f}", f"{p['realised_pnl']:,.2f}", f"{p['unrealised_pnl']:,.2f}",
                          f"{p['fees']:,.2f}", f"{p['drawdown']:.2%}" + (" HALTED" if p["halted"] else ""))
        return Group(Panel(f"tickflow {self.name}: {self.stage}"), topics, markets, decisions, books)
