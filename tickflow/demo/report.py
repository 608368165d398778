"""The demo's report, from what the topics hold: counts, equity against buy-and-hold, latencies, and
each market's spread and top-5 imbalance over time from its book on ``market.books``.

``read_topics`` reads every record of the demo's topics with its Kafka timestamp; ``summarise`` turns
them into figures (pure); ``write_report`` writes ``report.md``, ``report.json`` and the PNGs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts.book_reader import BookReader
from contracts.books import BookUpdate
from contracts.errors import ContractError
from contracts.messages import Bar, FeatureVector, Fill, Message, Order, PortfolioSnapshot
from contracts.serde import decode
from contracts.timeutil import iso
from contracts.topic_reader import read_to_end
from contracts.topics import (
    FILLS,
    MAIN_TOPICS,
    MARKET_BOOKS,
    ORDERS,
    PORTFOLIO,
    REGISTRY,
    SIGNALS_BARS,
    SIGNALS_FEATURES,
    topic,
)
from tickflow.view.top_of_book import top_of_book


@dataclass(frozen=True)
class Record:
    ts_ms: int  # the Kafka record timestamp (producer create time)
    value: Message | None  # None: failed its contract


def read_topics(bootstrap: str, names: tuple[str, ...] | None = None) -> dict[str, list[Record]]:
    """Every record of each topic (in each partition's order), up to the end offsets at the time of the call."""
    names = names or tuple(t.name for t in MAIN_TOPICS) + tuple(n for n in REGISTRY if n.endswith(".dlq"))
    out: dict[str, list[Record]] = {}
    for name in names:
        records: list[Record] = []
        for msg in read_to_end(bootstrap, name):
            try:
                value: Message | None = decode(msg.value() or b"", topic(name).value_type)
            except ContractError:
                value = None
            records.append(Record(msg.timestamp()[1], value))
        out[name] = records
    return out


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    arr = np.asarray(values, dtype=np.float64)
    return {"n": len(values), "p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99)), "max": float(arr.max())}


def summarise(held: dict[str, list[Record]], since_ts: int = 0, every: int = 1) -> dict[str, Any]:
    """Figures of the run, every one computed from the records the topics hold.

    Equity is compared from ``since_ts`` (event time; the candle replay's start) on; ``every`` is the policy's
    decision cadence in bars. There is one buy-and-hold, on the policy's symbol over the same 60 s bars: fully
    invested from the policy's first decision bar (bought at the next bar's open, as the policy's orders are),
    net of the paper broker's default costs, as `tickflow evaluate`'s; beside it the one matched for exposure.
    """
    counts = {name: len(recs) for name, recs in held.items()}
    features = [r for r in held.get(SIGNALS_FEATURES.name, []) if isinstance(r.value, FeatureVector)]
    orders = [r for r in held.get(ORDERS.name, []) if isinstance(r.value, Order)]
    fills = [r for r in held.get(FILLS.name, []) if isinstance(r.value, Fill)]
    books = sorted((r.value for r in held.get(PORTFOLIO.name, []) if isinstance(r.value, PortfolioSnapshot)),
                   key=lambda b: b.ts)
    feature_at = {(f.value.exchange, f.value.symbol, f.value.ts): f.ts_ms for f in features}  # type: ignore[union-attr]
    decide = [float(o.ts_ms - feature_at[k]) for o in orders
              if (k := (o.value.exchange, o.value.symbol, o.value.feature_ts)) in feature_at]  # type: ignore[union-attr]
    order_at = {o.value.order_id: o.ts_ms for o in orders}  # type: ignore[union-attr]
    first_fill: dict[str, int] = {}
    for f in fills:
        oid = f.value.order_id  # type: ignore[union-attr]
        if oid in order_at and oid not in first_fill:
            first_fill[oid] = f.ts_ms - order_at[oid]
    policies = sorted({b.policy_id for b in books})
    equity = {}
    for p in policies:
        series = [(b.ts, b.equity) for b in books if b.policy_id == p]
        equity[p] = [x for x in series if x[0] >= since_ts] or series
    latest = {p: next(b for b in reversed(books) if b.policy_id == p) for p in policies}
    bars = sorted((r.value for r in held.get(SIGNALS_BARS.name, [])
                   if isinstance(r.value, Bar) and r.value.interval_s == 60), key=lambda b: b.window_end)
    first_book = {p: next(b for b in books if b.policy_id == p) for p in policies}  # before any fill: the capital
    trades = {p: paper_trades([b for b in bars if b.window_end > since_ts], fills, p, first_book[p].equity, every)
              for p in policies}
    hold = {p: t["full"]["equity"] for p, t in trades.items() if "full" in t}
    return {
        "trades": trades,
        "backlog": feature_backlog(features, orders),
        "counts": counts,
        "refused": {name: sum(1 for r in recs if r.value is None) for name, recs in held.items()},
        "latency_ms": {"feature_to_order": _percentiles(decide), "order_to_first_fill": _percentiles(
            [float(v) for v in first_fill.values()])},
        "orders": len(orders), "fills": len(fills), "filled_orders": len(first_fill),
        "policies": {p: {"equity_start": equity[p][0][1], "equity_end": latest[p].equity,
                         "realised_pnl": latest[p].realised_pnl, "unrealised_pnl": latest[p].unrealised_pnl,
                         "fees": latest[p].fees, "drawdown": latest[p].drawdown, "positions": latest[p].positions,
                         "halted": latest[p].halted, "snapshots": len(equity[p]),
                         "buy_and_hold_symbol": trades[p]["symbol"],
                         "buy_and_hold_from_ts": trades[p]["full"]["from_ts"] if hold.get(p) else None,
                         "buy_and_hold_end": hold[p][-1][1] if hold.get(p) else None} for p in policies},
        "since_ts": since_ts,
        "equity": equity,
        "buy_and_hold": hold,
        "books": book_series(held),
    }


def paper_trades(bars: list[Bar], fills: list[Record], policy: str, capital: float, every: int) -> dict[str, Any]:
    """The paper-traded round trips of ``policy`` on the bars' symbol, with `tickflow evaluate`'s own functions.

    The fills are booked bar by bar into the backtest's shape (``trader.backtest.Run``: equity at each 60 s close
    over the starting equity, position as a fraction of equity), so ``trader.round_trips`` cuts the same round
    trips and ``trade_summary`` gives count, win rate and average win and loss. A bar's "open" is the mean price
    of the fills in it (the prices paid), else its open. Beside it: buy-and-hold at the same mean exposure
    (``trader.evaluation.matched_buy_and_hold``) and fully invested (``full``: from ``from_ts``, the first decision
    bar), both with the paper broker's default costs.
    """
    from contracts.costs import CostModel, CostSettings
    from trader.backtest import Run, decision_mask, metrics, simulate
    from trader.evaluation import matched_buy_and_hold
    from trader.policy.dataset import Dataset
    from trader.round_trips import round_trips, trade_summary

    symbol = next((f.value.symbol for f in fills if isinstance(f.value, Fill) and f.value.policy_id == policy),
                  bars[0].symbol if bars else "")
    bars = [b for b in bars if b.symbol == symbol]
    if len(bars) < 2:
        return {"symbol": symbol, "bars": len(bars), "round_trips": [], "summary": trade_summary([])}
    mine = sorted((f.value for f in fills if isinstance(f.value, Fill) and f.value.policy_id == policy
                   and f.value.symbol == symbol), key=lambda f: f.ts)
    n = len(bars)
    ts = np.array([b.window_start for b in bars], dtype=np.int64)
    opens, closes = np.array([b.open for b in bars]), np.array([b.close for b in bars])
    paid = opens.copy()
    equity, positions = np.empty(n), np.zeros(n)
    cash, units, i, fees = capital, 0.0, 0, 0.0
    for k, b in enumerate(bars):
        notional = qty = 0.0
        while i < len(mine) and mine[i].ts < b.window_end:
            f = mine[i]
            signed = f.qty if f.side == "buy" else -f.qty
            units += signed
            cash -= signed * f.price + f.fee
            fees += f.fee
            if f.ts >= b.window_start:
                notional, qty = notional + f.qty * f.price, qty + f.qty
            i += 1
        if qty:
            paid[k] = notional / qty
        value = cash + units * b.close
        equity[k] = value / capital
        positions[k] = units * b.close / value if value else 0.0
    run = Run(equity=equity, positions=positions, fees=fees / capital, slippage=0.0, trades=len(mine))
    trips = round_trips(run, ts, paid, closes)
    costs = CostModel(CostSettings())
    decide = decision_mask(ts, every, 60)
    exposure = float(metrics(run, 60)["exposure"])
    data = Dataset(symbol, 60, "v1", (), ts, opens, closes, np.empty((n, 0)), "signals.bars", "", False)
    position, matched = matched_buy_and_hold(data, exposure, costs, decide)
    full = simulate(lambda _t, _p: 1.0, opens, closes, costs, decide)
    first_decision = int(ts[int(np.argmax(decide))]) if decide.any() else int(ts[0])
    return {"symbol": symbol, "bars": n, "capital": capital, "exposure": exposure,
            "round_trips": [t.as_dict() for t in trips], "summary": trade_summary(trips),
            "policy_return": float(equity[-1] - 1.0),
            "buy_and_hold_return": float(full.equity[-1] - 1.0),
            "full": {"from_ts": first_decision,
                     "equity": [(int(t), float(e) * capital) for t, e in zip(ts, full.equity, strict=True)]},
            "matched": {"position": position, "return": float(matched.equity[-1] - 1.0),
                        "equity": [(int(t), float(e) * capital) for t, e in zip(ts, matched.equity, strict=True)]}}


def feature_backlog(features: list[Record], orders: list[Record]) -> dict[str, Any]:
    """How busy the features topic was when each order's feature was written: the feature records (all
    intervals and markets, each one the trader reads and decodes) written in the second before it. A
    full-speed replay writes thousands a second, so a decision waits behind them; a live market writes a few."""
    written = np.sort(np.array([f.ts_ms for f in features], dtype=np.int64))
    at = {(f.value.exchange, f.value.symbol, f.value.ts): f.ts_ms for f in features}  # type: ignore[union-attr]
    burst = []
    for o in orders:
        t = at.get((o.value.exchange, o.value.symbol, o.value.feature_ts))  # type: ignore[union-attr]
        if t is not None:
            burst.append(float(np.searchsorted(written, t, "right") - np.searchsorted(written, t - 1000, "right")))
    span_s = (int(written[-1]) - int(written[0])) / 1000 if len(written) > 1 else 0.0
    return {"per_order_last_second": _percentiles(burst), "features": len(written),
            "features_per_s": len(written) / span_s if span_s else 0.0}


def book_series(held: dict[str, list[Record]]) -> dict[str, dict[str, Any]]:
    """Per market, the book rebuilt from market.books (``BookReader``) after every update it applied:
    ``[ts_event, spread_bps, top-5 imbalance]`` rows, and their summary."""
    reader = BookReader()
    rows: dict[str, list[list[float]]] = {}
    for i, r in enumerate(held.get(MARKET_BOOKS.name, [])):
        u = r.value
        if not isinstance(u, BookUpdate):
            continue
        book = reader.apply(u, f"{MARKET_BOOKS.name} record {i}")
        top = top_of_book(book) if book is not None else None
        if top is not None and top["imbalance"] is not None:
            rows.setdefault(f"{u.exchange}:{u.symbol}", []).append([u.ts_event, top["spread_bps"], top["imbalance"]])
    out = {}
    for key, series in sorted(rows.items()):
        arr = np.asarray(series, dtype=np.float64)
        out[key] = {"updates": len(series), "from_ts": int(arr[0, 0]), "to_ts": int(arr[-1, 0]),
                    "spread_bps": {"p50": float(np.median(arr[:, 1])), "p90": float(np.percentile(arr[:, 1], 90)),
                                   "max": float(arr[:, 1].max())},
                    "imbalance": {"mean": float(arr[:, 2].mean()), "min": float(arr[:, 2].min()),
                                  "max": float(arr[:, 2].max())},
                    "series": series}
    return out


def write_report(out: Path, figures: dict[str, Any], meta: dict[str, Any]) -> Path:
    """``report.md`` (+ ``report.json``, ``equity.png``) under ``out``; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    pngs = _plot(out, figures)
    lines = ["# tickflow demo report", "", f"Run {meta.get('started', '')} to {meta.get('finished', '')}, "
             f"{meta.get('seconds', 0):.0f} s after set-up. Data: {meta.get('data', '')}.", "",
             "## Counts per topic", "", "Read back from the topics after the run (records on each topic).", "",
             "| topic | records | refused by contract |", "|---|---:|---:|"]
    for name, n in figures["counts"].items():
        lines.append(f"| {name} | {n:,} | {figures['refused'].get(name, 0):,} |")
    lines += ["", "## Equity against buy-and-hold", ""]
    for p, s in figures["policies"].items():
        ret = s["equity_end"] / s["equity_start"] - 1 if s["equity_start"] else 0.0
        lines.append(f"- **{p}**: equity {s['equity_start']:,.2f} -> {s['equity_end']:,.2f} ({ret:+.2%}); realised "
                     f"{s['realised_pnl']:,.2f}, unrealised {s['unrealised_pnl']:,.2f}, fees {s['fees']:,.2f}, "
                     f"drawdown {s['drawdown']:.2%}, positions {s['positions']}, "
                     f"{'HALTED' if s['halted'] else 'trading'}; {s['snapshots']:,} snapshots compared.")
        if s["buy_and_hold_end"] is not None:
            t = figures["trades"][p]
            lines.append(f"  Buy-and-hold {s['buy_and_hold_symbol']}, fully invested from the policy's first decision "
                         f"bar ({iso(s['buy_and_hold_from_ts'])}) to the last bar, net of costs: "
                         f"{t['capital']:,.2f} -> {s['buy_and_hold_end']:,.2f} ({t['buy_and_hold_return']:+.2%}).")
    if not figures["policies"]:
        lines.append("No portfolio snapshot reached the topic.")
    lines += [f"![equity]({png})" for png in pngs]
    lines += _trades_section(out, figures)
    lines += _book_section(out, figures)
    lines += ["", "## Latency (Kafka record timestamps)", "", "| stage | n | p50 ms | p90 ms | p99 ms | max ms |",
              "|---|---:|---:|---:|---:|---:|"]
    for stage, p in figures["latency_ms"].items():
        if p["n"]:
            lines.append(f"| {stage.replace('_', ' ')} | {p['n']:,} | {p['p50']:.1f} | {p['p90']:.1f} | "
                         f"{p['p99']:.1f} | {p['max']:.1f} |")
        else:
            lines.append(f"| {stage.replace('_', ' ')} | 0 | | | | |")
    lines += _latency_note(figures)
    lines += ["", f"Orders {figures['orders']:,}, fills {figures['fills']:,}, orders with a fill "
              f"{figures['filled_orders']:,}.", "", "## Where to look next", "",
              f"- The processes' logs: `{meta.get('logs', '')}`.",
              f"- The topics are kept under `{meta.get('kafka_home', '')}`: start that broker again with "
              f"`TICKFLOW_HOME={meta.get('kafka_home_parent', '')} tickflow kafka start` and read them with "
              "`tickflow topic dump orders`, or watch them with `tickflow view`.",
              "- Train your own policy: `notebooks/train_policy.ipynb`, or `tickflow train` and `tickflow evaluate`.",
              "- The whole stack with ksqlDB and Grafana: `docker compose up` (README).", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    (out / "report.json").write_text(json.dumps(figures, indent=1, default=str) + "\n")
    return report


def _trades_section(out: Path, figures: dict[str, Any]) -> list[str]:
    """Round trips per policy (also in trades-POLICY.csv), their count, win rate and average win and loss, and
    buy-and-hold matched for exposure beside the fully invested one."""
    from trader.report import when, write_trades_csv
    from trader.round_trips import RoundTrip

    lines = ["", "## Round trips and buy-and-hold matched for exposure", ""]
    for p, t in figures.get("trades", {}).items():
        s, capital = t["summary"], t.get("capital", 0.0)
        if t["bars"] < 2:
            lines.append(f"- **{p}**: fewer than two 60 s bars of {t['symbol'] or 'any symbol'}; no round trips.")
            continue
        trips = [RoundTrip(**d) for d in t["round_trips"]]
        write_trades_csv(out / f"trades-{p}.csv", trips)
        lines += [f"**{p}** on {t['symbol']} over {t['bars']:,} bars of 60 s: {s['count']:.0f} round trips, win rate "
                  f"{s['win_rate']:.0%}, average win {s['avg_win'] * capital:+,.2f} and average loss "
                  f"{s['avg_loss'] * capital:+,.2f} (quote currency, net of costs); mean exposure {t['exposure']:.1%} "
                  f"of equity. Return {t['policy_return']:+.2%}; buy-and-hold fully invested from the first "
                  f"decision bar, net of costs, {t['buy_and_hold_return']:+.2%}; buy-and-hold at the policy's exposure "
                  f"({t['matched']['position']:.1%} held from the first decision bar) {t['matched']['return']:+.2%}. "
                  f"Each trade is in `trades-{p}.csv`.", ""]
        if trips:
            lines += ["| side | entry (UTC) | entry price | exit (UTC) | exit price | PnL | return | hours |",
                      "|---|---|---:|---|---:|---:|---:|---:|"]
            for r in trips[:50]:
                lines.append(f"| {r.side} | {when(r.entry_ts)} | {r.entry_price:,.2f} | {when(r.exit_ts)}"
                             f"{' (open)' if r.open else ''} | {r.exit_price:,.2f} | {r.pnl * capital:+,.2f} | "
                             f"{r.ret:+.3%} | {r.duration_s / 3600:.1f} |")
            if len(trips) > 50:
                lines.append(f"| ... {len(trips) - 50} more in trades-{p}.csv | | | | | | | |")
            lines.append("")
    return lines


def _latency_note(figures: dict[str, Any]) -> list[str]:
    """Why feature->order here is not the bench's figure: the replay's backlog, measured."""
    b, lat = figures.get("backlog"), figures["latency_ms"]["feature_to_order"]
    if not b or not lat["n"] or not b["per_order_last_second"]["n"]:
        return []
    burst = b["per_order_last_second"]
    return ["", f"Why feature to order takes {lat['p50']:.0f} ms (p50) here and about 6 ms in `make bench`: this run "
            f"replays at full speed, so the worker writes {b['features_per_s']:,.0f} feature records a second on "
            f"average ({b['features']:,} in all, every interval and market; the trader reads and decodes each). "
            f"In the second before each order's feature was written, a median {burst['p50']:,.0f} (p90 "
            f"{burst['p90']:,.0f}) other feature records were written: the decision waits behind that backlog. The "
            "bench times one feature at a time with no backlog; a live market writes a few features a second."]


def _book_section(out: Path, figures: dict[str, Any]) -> list[str]:
    """The report's "Spread and imbalance" section, with its chart (``books.png``)."""
    books = figures.get("books") or {}
    lines = ["", "## Spread and imbalance (market.books)", ""]
    if not books:
        return [*lines, "No order book reached market.books."]
    lines += ["From each market's book rebuilt from market.books with the project's book code, after every "
              "update: the spread in bps of the mid and the imbalance of the top 5 levels a side, "
              "(bid size - ask size) / (bid size + ask size).", "",
              "| market | updates | event time | spread bps p50 | p90 | max | imbalance mean | min | max |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for key, b in books.items():
        sp, im = b["spread_bps"], b["imbalance"]
        lines.append(f"| {key} | {b['updates']:,} | {iso(b['from_ts'])[:19]} to {iso(b['to_ts'])[11:19]} | "
                     f"{sp['p50']:.4f} | {sp['p90']:.4f} | {sp['max']:.4f} | {im['mean']:+.3f} | {im['min']:+.3f} | "
                     f"{im['max']:+.3f} |")
    _plot_books(out, books)
    return [*lines, "", "![spread and imbalance](books.png)"]


def _plot_books(out: Path, books: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    t0 = min(b["from_ts"] for b in books.values())
    for key, b in books.items():
        arr = np.asarray(b["series"], dtype=np.float64)
        minutes = (arr[:, 0] - t0) / 60_000
        top.step(minutes, arr[:, 1], where="post", linewidth=0.8, label=key)
        bottom.step(minutes, arr[:, 2], where="post", linewidth=0.6, label=key)
    top.set_ylabel("spread (bps of mid)")
    top.set_title("Spread and top-5 imbalance after every book update, from market.books")
    bottom.axhline(0.0, color="grey", linewidth=0.6)
    bottom.set_ylim(-1.05, 1.05)
    bottom.set_ylabel("imbalance, top 5 levels")
    bottom.set_xlabel(f"minutes of event time from {iso(t0)[:19]} UTC")
    top.legend(loc="upper right")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "books.png", dpi=100)
    plt.close(fig)


def _plot(out: Path, figures: dict[str, Any]) -> list[str]:
    if not figures["policies"]:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    t0 = min(series[0][0] for series in figures["equity"].values())

    def hours(values: list[int]) -> list[float]:
        return [(t - t0) / 3_600_000 for t in values]

    for p, series in figures["equity"].items():
        ts = [t for t, _ in series]
        ax.step(hours(ts), [e for _, e in series], where="post", label=f"{p} equity")
        bh = figures["buy_and_hold"].get(p) or []
        if bh:
            ax.plot(hours([t for t, _ in bh]), [e for _, e in bh],
                    label=f"buy-and-hold {figures['policies'][p]['buy_and_hold_symbol']} from the first decision "
                    "bar, net of costs", alpha=0.7)
        matched = (figures.get("trades", {}).get(p) or {}).get("matched")
        if matched:
            ax.plot(hours([t for t, _ in matched["equity"]]), [e for _, e in matched["equity"]], linestyle="--",
                    label=f"buy-and-hold at the policy's exposure ({matched['position']:.0%})", alpha=0.8)
    ax.set_xlabel(f"hours of market time from {iso(t0)[:16]} UTC")
    ax.set_ylabel("equity (quote currency)")
    ax.set_title("Paper-traded equity against buy-and-hold, from the portfolio and signals.bars topics")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "equity.png", dpi=100)
    plt.close(fig)
    return ["equity.png"]
