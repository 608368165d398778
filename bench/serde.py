"""Contract serialisation cost: msgspec encode+decode of a Trade against the stdlib json path."""

from __future__ import annotations

import json
import statistics
import time

from bench.results import Result
from contracts import V1, Trade, decode, encode


def _per_op_us(fn: object, n: int, repeats: int = 7) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()  # type: ignore[operator]
        runs.append((time.perf_counter_ns() - start) / n / 1000)
    return statistics.median(runs)


def run(_ctx: object) -> list[Result]:
    trade = Trade(schema_version=V1, exchange="binance", symbol="BTC-USDT", venue_symbol="BTCUSDT",
                  trade_id="3752341285", price=61012.51, size=0.00123, side="buy",
                  ts_event=1723161253123, ts_ingest=1723161253130)

    def ours() -> None:
        decode(encode(trade), Trade)

    as_dict = {f: getattr(trade, f) for f in trade.__struct_fields__}

    def stdlib() -> None:  # the unoptimised path: json + building the same struct by hand
        doc = json.loads(json.dumps(as_dict).encode())
        Trade(**doc)

    n = 100_000
    return [
        Result("serde.trade_roundtrip_us", _per_op_us(ours, n), "us", "serde.stdlib_json_roundtrip_us",
               "msgspec encode + strict decode of one Trade, median of 7 runs"),
        Result("serde.stdlib_json_roundtrip_us", _per_op_us(stdlib, n), "us", None,
               "reference: json.dumps/json.loads + constructing the Trade (no validation)"),
    ]
