"""`tickflow compare`: a leaderboard of evaluations (each an ``evaluate`` output directory's metrics.json)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = ("run", "policy", "data", "seed", "out_of_time", "return", "sharpe", "max_drawdown", "turnover",
           "exposure", "buy_and_hold", "buy_and_hold_matched")


def leaderboard(eval_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per evaluation, best return first."""
    rows = []
    for d in eval_dirs:
        path = d / "metrics.json"
        if not path.is_file():
            raise ValueError(f"{d} has no metrics.json: give directories written by `tickflow evaluate --out`")
        m = json.loads(path.read_text())
        p, b = m["policy"], m["baselines"]
        rows.append({
            "run": str(d), "policy": f"{m['bundle']['algo']}-{m['bundle']['version']}",
            "data": Path(m["data"]["file"]).name, "seed": m["bundle"].get("seed"),
            "out_of_time": m["data"].get("out_of_time"), "return": p["total_return"], "sharpe": p["sharpe"],
            "max_drawdown": p["max_drawdown"], "turnover": p["turnover"], "exposure": p["exposure"],
            "buy_and_hold": b["buy_and_hold"]["total_return"],
            "buy_and_hold_matched": b.get("buy_and_hold_matched", {}).get("total_return"),
        })
    return sorted(rows, key=lambda r: -float(r["return"]))


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = (f"{'#':>2} {'policy':18} {'data':44} {'seed':>5} {'oot':>4} {'return':>8} {'sharpe':>7} {'max_dd':>7} "
            f"{'turnover':>8} {'exposure':>8} {'b&h':>8} {'b&h@exp':>8}")
    lines = [head]
    for i, r in enumerate(rows, 1):
        lines.append(f"{i:>2} {r['policy'][:18]:18} {r['data'][:44]:44} {num(r['seed'], 'd'):>5} "
                     f"{'yes' if r['out_of_time'] else 'no':>4} {r['return']:+8.4f} {r['sharpe']:+7.2f} "
                     f"{r['max_drawdown']:7.4f} {r['turnover']:8.0f} {r['exposure']:8.3f} "
                     f"{r['buy_and_hold']:+8.4f} {num(r['buy_and_hold_matched'], '+8.4f'):>8}")
    return "\n".join(lines)
