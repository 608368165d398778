"""`make bench`: run every benchmark against local brokers; write bench/results.json.

Kafka's perf tool and the ingest replay share one broker (warmed up alike); a module that reads the
registry's topics (FRESH_BROKER = True) gets a broker of its own.

Each throughput sits beside the reference it is compared with, measured in the same run (Kafka's own
perf tools, or an unoptimised path), because these machines are noisy. Select with
`python -m bench NAME...` (module names below); a partial run writes bench/out/results.json instead.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from bench.context import BenchContext
from bench.results import Result, write
from contracts.logs import setup_logging
from infra.kafka.broker import LocalBroker, free_port

MODULES = ["serde", "kafka_perf", "ingest", "books", "streams", "trader", "swap", "policy", "cluster"]
OUT = Path(__file__).resolve().parent / "results.json"


def _run(module: ModuleType, ctx: BenchContext) -> list[Result]:
    results: list[Result] = module.run(ctx)
    for r in results:
        print(f"  {r.name} = {r.value:,.3f} {r.unit}" + (f"  (vs {r.reference})" if r.reference else ""), flush=True)
    return results


USAGE = f"usage: python -m bench [NAME ...]   (NAME: {', '.join(MODULES)}; none: all, into {OUT.name})"


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    unknown = [a for a in argv if a not in MODULES]
    if unknown:
        print(f"bench: no benchmark named {', '.join(map(repr, unknown))}; {USAGE}", file=sys.stderr)
        return 2
    setup_logging()
    chosen = argv or MODULES
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tickflow-bench-") as tmp:
        shared: LocalBroker | None = None
        try:
            for name in chosen:
                module = importlib.import_module(f"bench.{name}")
                print(f"bench: {name} ...", flush=True)
                if getattr(module, "FRESH_BROKER", False):
                    # Its input topics must hold only its own records (the ingest module leaves a million
                    # trades on market.trades): a broker of its own.
                    own = LocalBroker(Path(tmp) / name, port=free_port())
                    try:
                        results.extend(_run(module, BenchContext(own.start(die_with_parent=True), Path(tmp) / name)))
                    finally:
                        own.stop()
                    continue
                if shared is None:
                    shared = LocalBroker(Path(tmp) / "shared", port=free_port())
                    shared_info = shared.start(die_with_parent=True)
                results.extend(_run(module, BenchContext(shared_info, Path(tmp) / "shared")))
        finally:
            if shared is not None:
                shared.stop()
    # Only a full run replaces bench/results.json: its ratios need every reference from the same run.
    out = OUT if not argv else OUT.parent / "out" / "results.json"
    write(results, out)
    print(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
