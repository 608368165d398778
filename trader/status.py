"""The trader's small HTTP status endpoint: /health, /positions, /orders and /metrics (Prometheus).

It shows a ``PolicyTrader`` and the handler latencies the service records (the same list, read live);
it knows nothing of the service around them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from contracts import to_dict
from contracts.feature_schema import warmup_text
from contracts.timeutil import iso
from trader.handler import PolicyTrader


def warmup(t: PolicyTrader) -> dict[str, dict[str, Any]]:
    """Per market of the policy's interval: the bars seen, whether the features are ready, the next decision
    bar, and in words what the trader waits for before it decides (the /health ``warmup`` object)."""
    out: dict[str, dict[str, Any]] = {}
    step_ms = t.interval_s * 1000 * t.every
    for (ex, sym), st in sorted(t.symbols.items()):
        text = warmup_text(t.interval_s, st.bars, st.ready)
        next_ms = None
        if st.ready and t.last_feature_ts:
            next_ms = (t.last_feature_ts // step_ms + 1) * step_ms
            if t.every > 1:
                text += f"; decides every {t.every} bars, next at bar end {iso(next_ms)[:16]} UTC"
        out[f"{ex}:{sym}"] = {"interval_s": t.interval_s, "bars": st.bars, "ready": st.ready,
                              "decision_every": t.every, "next_decision_ts": next_ms, "text": text}
    return out


def _p99(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class StatusServer:
    def __init__(self, trader: PolicyTrader, latencies_us: Sequence[float], host: str, port: int) -> None:
        self.trader = trader
        self.latencies_us = latencies_us  # feature in to orders out, appended to by the service
        # one of several instances of the policy (trader.instances): its id and the partitions it owns now
        self.owner: dict[str, Any] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, kind = outer.render(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body or b"not found: try /health, /positions, /orders or /metrics\n")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="trader-status", daemon=True)
        self.thread.start()

    def render(self, path: str) -> tuple[bytes | None, str]:
        t = self.trader
        if path == "/health":
            data: Any = {"status": "halted" if t.halted else "ok", "policy_id": t.policy_id,
                         "policy_version": t.version, "decisions": t.decisions, "held": t.held,
                         "last_feature_ts": t.last_feature_ts, "halt_reason": t.risk.halt_reason,
                         "warmup": (w := warmup(t)),
                         "waiting_for": "; ".join(f"{k} {v['text']}" for k, v in w.items()) or
                         f"no feature vectors yet ({warmup_text(t.interval_s, 0, False)})"}
            data.update(self.owner)
        elif path == "/positions":
            data = to_dict(t.book.snapshot(t.policy_id, t.last_feature_ts, t.halted))
            data["intended"] = {f"{ex}:{sym}": st.units for (ex, sym), st in t.symbols.items()}
        elif path == "/orders":
            data = [to_dict(o) for o in list(t.recent)]
        elif path == "/metrics":
            return self.metrics().encode(), "text/plain; version=0.0.4"
        else:
            return None, "text/plain"
        return (json.dumps(data, indent=1) + "\n").encode(), "application/json"

    def metrics(self) -> str:
        t = self.trader
        labels = f'policy_id="{t.policy_id}",policy_version="{t.version}"'
        rows = [
            ("tickflow_trader_decisions_total", "counter", "decisions taken", t.decisions),
            ("tickflow_trader_held_total", "counter", "decisions held by the risk gate or warm-up", t.held),
            ("tickflow_trader_orders_recent", "gauge", "orders kept for /orders", len(t.recent)),
            ("tickflow_trader_equity", "gauge", "book equity in quote currency", t.book.equity),
            ("tickflow_trader_drawdown", "gauge", "drawdown from peak equity", t.book.drawdown),
            ("tickflow_trader_halted", "gauge", "1 when the risk gate halted the policy", int(t.halted)),
            ("tickflow_trader_handler_p99_us", "gauge", "feature in to orders out, p99 of recent",
             _p99(self.latencies_us)),
        ]
        out = []
        for name, kind, text, value in rows:
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name}{{{labels}}} {float(value)}"]
        return "\n".join(out) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
