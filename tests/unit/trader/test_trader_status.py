"""The trader's status endpoint over HTTP: what it shows comes from the trader and the latencies it is given."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.unit.trader.trader_support import feature, linear_bundle
from trader.handler import PolicyTrader
from trader.status import StatusServer

MIN = 60_000
T0 = 1_750_000_000_000 - 1_750_000_000_000 % MIN


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return str(r.read().decode())


def test_status_shows_the_trader_and_the_latencies_live(tmp_path: Path) -> None:
    trader = PolicyTrader(linear_bundle(tmp_path / "b"), "p1", notional=1000.0, capital=10_000.0)
    latencies: list[float] = []
    server = StatusServer(trader, latencies, "127.0.0.1", 0)
    try:
        health = json.loads(_get(server.port, "/health"))
        assert health["status"] == "ok" and health["policy_id"] == "p1" and health["decisions"] == 0
        [order] = trader.on_feature(feature(T0, 1.0, close=2000.0), 0).orders
        latencies.extend([5.0] * 99 + [70.0])  # the service appends to the same list
        assert json.loads(_get(server.port, "/health"))["decisions"] == 1
        assert json.loads(_get(server.port, "/positions"))["intended"] == {"binance:ETH-USDT": order.qty}
        assert [o["order_id"] for o in json.loads(_get(server.port, "/orders"))] == [order.order_id]
        metrics = _get(server.port, "/metrics")
        assert 'tickflow_trader_handler_p99_us{policy_id="p1"' in metrics and "} 70.0" in metrics
        trader.restore_halt(trader.book.snapshot("p1", T0, True))
        assert json.loads(_get(server.port, "/health"))["status"] == "halted"
        halted = [ln for ln in _get(server.port, "/metrics").splitlines() if ln.startswith("tickflow_trader_halted{")]
        assert [ln.rsplit(" ", 1)[1] for ln in halted] == ["1.0"]
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(server.port, "/nothing")
    finally:
        server.close()


def test_health_says_what_the_trader_waits_for(tmp_path: Path) -> None:
    """The bundled 11 minutes of ticks give 11 bars of 60 s, short of the 61 the features need: /health says so."""
    trader = PolicyTrader(linear_bundle(tmp_path / "b", every=60), "p1", notional=1000.0, capital=10_000.0)
    server = StatusServer(trader, [], "127.0.0.1", 0)
    try:
        assert json.loads(_get(server.port, "/health"))["waiting_for"] == (
            "no feature vectors yet (60 s bars: 0 of 61 needed before the first decision)")
        for k in range(11):
            assert trader.on_feature(feature(T0 + k * MIN, 1.0, ready=False), 0).orders == []
        health = json.loads(_get(server.port, "/health"))
        assert health["warmup"]["binance:ETH-USDT"]["bars"] == 11
        assert health["waiting_for"] == "binance:ETH-USDT 60 s bars: 11 of 61 needed before the first decision"
        hour = T0 - T0 % (60 * MIN) + 60 * MIN
        trader.on_feature(feature(hour + MIN, 1.0), 0)  # ready, but decisions are hourly
        w = json.loads(_get(server.port, "/health"))["warmup"]["binance:ETH-USDT"]
        assert w["ready"] and w["next_decision_ts"] == hour + 60 * MIN
        assert w["text"].startswith("60 s bars: features ready (61 bars needed); decides every 60 bars, next at ")
    finally:
        server.close()
