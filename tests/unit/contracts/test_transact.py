"""kafka_io.transact's error policy: an abortable error aborts and retries the same records and offsets;
a fatal error or a commit that times out leaves the producer in doubt and is raised, never retried."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from contracts.kafka_io import TransactionInDoubt, transact


class _Producer:
    """Records the transactional calls; ``commit_errors`` are raised by successive commits."""

    def __init__(self, *commit_errors: KafkaError) -> None:
        self.commit_errors = list(commit_errors)
        self.calls: list[Any] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.calls.append(("produce", topic, value))

    def send_offsets_to_transaction(self, offsets: list[int], meta: str) -> None:
        self.calls.append(("offsets", tuple(offsets), meta))

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")


RECORDS = [("orders", b"o1", b"k"), ("portfolio", b"p1", None)]


def _offsets() -> tuple[list[int], str]:
    return [7], "group"


def test_an_abortable_error_aborts_then_commits_the_same_records_and_offsets() -> None:
    p = _Producer(KafkaError(KafkaError._STATE, "leader moved", txn_requires_abort=True))
    transact(p, RECORDS, _offsets)  # type: ignore[arg-type]
    one = ["begin", ("produce", "orders", b"o1"), ("produce", "portfolio", b"p1"), ("offsets", (7,), "group"),
           "commit"]
    assert p.calls == [*one, "abort", *one]


@pytest.mark.parametrize("err", [
    KafkaError(KafkaError._FENCED, "producer fenced", fatal=True),
    KafkaError(KafkaError._TIMED_OUT, "commit timed out", retriable=True),
], ids=["fatal", "timed-out"])
def test_a_fatal_or_timed_out_commit_is_raised_without_reusing_the_producer(err: KafkaError) -> None:
    p = _Producer(err)
    with pytest.raises(TransactionInDoubt, match="not used again: restart the service"):
        transact(p, RECORDS, None)  # type: ignore[arg-type]
    assert p.calls.count("begin") == 1 and "abort" not in p.calls


def test_aborts_that_never_end_are_raised_after_the_attempts() -> None:
    abortable = KafkaError(KafkaError._STATE, "again", txn_requires_abort=True)
    p = _Producer(*[abortable] * 3)
    with pytest.raises(TransactionInDoubt, match="3 transactions aborted in a row"):
        transact(p, RECORDS, None, attempts=3)  # type: ignore[arg-type]
    assert p.calls.count("abort") == 3
