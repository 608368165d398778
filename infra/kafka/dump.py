"""Read a topic from the beginning, to its end and on until it is idle: `tickflow topic dump`."""

from __future__ import annotations

import itertools
import json
import sys
from typing import TextIO

from contracts.topic_reader import read_then_follow


def dump(bootstrap: str, name: str, idle_timeout: float, limit: int | None, with_meta: bool,
         out: TextIO = sys.stdout) -> int:
    """Print values as JSON lines (or with topic/partition/offset/key when ``with_meta``): every record
    up to the end offsets at the call, then those that arrive until none has for ``idle_timeout`` s;
    at most ``limit``."""
    count = 0
    for msg in itertools.islice(read_then_follow(bootstrap, name, idle_timeout), limit):
        value = (msg.value() or b"").decode("utf-8", errors="replace")
        if with_meta:
            key = (msg.key() or b"").decode("utf-8", errors="replace")
            try:
                parsed: object = json.loads(value)
            except ValueError:
                parsed = value
            record = {"partition": msg.partition(), "offset": msg.offset(), "key": key, "value": parsed}
            out.write(json.dumps(record) + "\n")
        else:
            out.write(value + "\n")
        count += 1
    out.flush()
    return count
