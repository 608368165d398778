"""`make bench`: run every benchmark against one fresh local broker; write bench/results.json.

Each throughput sits beside the reference it is compared with, measured in the same run (Kafka's own
perf tools, or an unoptimised path), because these machines are noisy. Select with
`python -m bench NAME...` (module names below); a partial run writes bench/out/results.json instead.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

from bench.context import BenchContext
from bench.results import Result, write
from contracts.logs import setup_logging
from infra.kafka.broker import LocalBroker, free_port

MODULES = ["serde", "kafka_perf", "ingest", "streams", "trader"]
OUT = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str]) -> int:
    setup_logging()
    chosen = argv or MODULES
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tickflow-bench-") as tmp:
        broker = LocalBroker(Path(tmp) / "home", port=free_port())
        info = broker.start(die_with_parent=True)
        try:
            ctx = BenchContext(info, Path(tmp))
            for name in chosen:
                module = importlib.import_module(f"bench.{name}")
                print(f"bench: {name} ...", flush=True)
                for r in module.run(ctx):
                    results.append(r)
                    print(f"  {r.name} = {r.value:,.3f} {r.unit}" + (f"  (vs {r.reference})" if r.reference else ""),
                          flush=True)
        finally:
            broker.stop()
    # Only a full run replaces bench/results.json: its ratios need every reference from the same run.
    out = OUT if not argv else OUT.parent / "out" / "results.json"
    write(results, out)
    print(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
