"""`tickflow view`: serve the live view of the topics on a local web page."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    view = sub.add_parser(
        "view", help="serve a live web page of price, order books, signals, positions and PnL from the topics",
        description="Follow market.trades, market.books, signals.bars, signals.features, orders, fills and "
        "portfolio at KAFKA_BOOTSTRAP and serve a page that shows them, each market's top of book and spread "
        "among them (http://HOST:PORT/), its JSON "
        "(/api/state) and a health probe (/healthz). Everything is inline: no internet needed.",
    )
    view.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1; 0.0.0.0 in Docker)")
    view.add_argument("--port", type=int, default=8050, help="listen port (default 8050)")
    view.add_argument("--from", dest="start", choices=("earliest", "latest"), default="earliest",
                      help="read the topics from their first offsets (default) or only new records")
    view.add_argument("--interval", type=int, default=60,
                      help="the policy's bar interval in seconds: the price chart and the warm-up line follow it")
    view.add_argument("--points", type=int, default=600, help="points kept per chart (default 600)")
    view.add_argument("--poll-ms", type=int, default=1000, help="page refresh period in ms; 0 turns polling off")
    view.set_defaults(func=_view)


def _view(args: argparse.Namespace) -> int:
    from contracts.settings import kafka_bootstrap
    from tickflow.view.feed import TopicFeed
    from tickflow.view.server import ViewServer
    from tickflow.view.state import ViewState

    bootstrap = kafka_bootstrap()
    state = ViewState(max_points=args.points, interval_s=args.interval)
    feed = TopicFeed(bootstrap, state, start=args.start)
    server = ViewServer(args.host, args.port, state, feed, source=f"Kafka at {bootstrap}", poll_ms=args.poll_ms)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    feed.start()
    serving = threading.Thread(target=server.serve_forever, name="view-http", daemon=True)
    serving.start()
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"tickflow view: http://{host}:{port}/ (following Kafka at {bootstrap}; Ctrl-C stops)", flush=True)
    while not stop.wait(0.5):
        if not feed.is_alive():
            break
    server.shutdown()
    server.server_close()
    feed.stop()
    if feed.error is not None:
        print(f"tickflow view: the Kafka feed failed: {feed.error}")
        return 1
    return 0
