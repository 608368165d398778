"""Read a topic from the beginning, to its end and on until it is idle: `tickflow topic dump`."""

from __future__ import annotations

import itertools
import json
import sys
from typing import TextIO

from contracts.topic_reader import end_offsets, follow, read_to_end


def dump(bootstrap: str, name: str, idle_timeout: float, limit: int | None, with_meta: bool,
         out: TextIO = sys.stdout) -> int:
    """Print values as JSON lines (or with topic/partition/offset/key when ``with_meta``): every record
    up to the end offsets at the call, then those that arrive until none has for ``idle_timeout`` s;
    at most ``limit``."""
    ends = end_offsets(bootstrap, name)
    records = itertools.chain(read_to_end(bootstrap, name, stop=ends, idle_s=idle_timeout),
                              follow(bootstrap, name, ends, idle_timeout))
    count = 0
    for msg in itertools.islice(records, limit):
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
