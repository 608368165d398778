"""kafka_io.transact's error policy: an abortable error aborts and retries a transaction of offsets alone, and
leaves the producer in doubt once records were sent (librdkafka keeps the epoch across an abort: a record of the
aborted attempt written after all would be taken for the retry's); a fatal error or a commit that times out
leaves the producer in doubt and is raised, never retried;
run_recovering opens a new session (a new producer, the state rebuilt) on such an error, except a fenced one."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from contracts import kafka_io
from contracts.kafka_io import Session, Stopper, TransactionInDoubt, commit_timeout_s, run_recovering, transact
from contracts.settings import SettingsError


class _Producer:
    """Records the transactional calls; ``commit_errors`` are raised by successive commits."""

    def __init__(self, *commit_errors: KafkaError) -> None:
        self.commit_errors = list(commit_errors)
        self.calls: list[Any] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.calls.append(("produce", topic, value))

    def send_offsets_to_transaction(self, offsets: list[int], meta: str, timeout: float) -> None:
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


def test_an_abortable_error_aborts_then_commits_the_same_offsets() -> None:
    p = _Producer(KafkaError(KafkaError._STATE, "leader moved", txn_requires_abort=True))
    transact(p, [], _offsets)  # type: ignore[arg-type]
    one = ["begin", ("offsets", (7,), "group"), "commit"]
    assert p.calls == [*one, "abort", *one]


def test_an_abortable_error_after_records_were_sent_is_in_doubt_and_nothing_is_sent_again() -> None:
    p = _Producer(KafkaError(KafkaError._STATE, "coordinator not available", txn_requires_abort=True))
    with pytest.raises(TransactionInDoubt, match="aborted after its records were sent") as caught:
        transact(p, RECORDS, _offsets)  # type: ignore[arg-type]
    assert not caught.value.fenced
    assert p.calls == ["begin", ("produce", "orders", b"o1"), ("produce", "portfolio", b"p1"),
                       ("offsets", (7,), "group"), "commit"]


@pytest.mark.parametrize("err", [
    KafkaError(KafkaError.INVALID_TXN_STATE, "invalid transaction state", fatal=True),
    KafkaError(KafkaError._TIMED_OUT, "commit timed out", retriable=True),
], ids=["fatal", "timed-out"])
def test_a_fatal_or_timed_out_commit_is_raised_without_reusing_the_producer(err: KafkaError) -> None:
    p = _Producer(err)
    with pytest.raises(TransactionInDoubt, match="not used again: a new producer rebuilds") as raised:
        transact(p, RECORDS, None)  # type: ignore[arg-type]
    assert p.calls.count("begin") == 1 and "abort" not in p.calls
    assert not raised.value.fenced


def test_a_fenced_producer_is_in_doubt_and_marked_fenced() -> None:
    p = _Producer(KafkaError(KafkaError.PRODUCER_FENCED, "fenced by a newer instance", fatal=True))
    with pytest.raises(TransactionInDoubt, match="another instance took the transactional id over") as raised:
        transact(p, RECORDS, None)  # type: ignore[arg-type]
    assert raised.value.fenced


class _Service:
    """Sessions whose steps raise ``errors`` one by one (None: a step that works); the stopper is set once they
    are used up."""

    def __init__(self, *errors: Exception | None) -> None:
        self.errors = list(errors)
        self.stopper = Stopper()
        self.opened: list[str] = []
        self.closed: list[tuple[str, bool]] = []

    def open(self) -> Session:
        name = f"session {len(self.opened) + 1}"
        self.opened.append(name)

        def step() -> None:
            if not self.errors:
                self.stopper.event.set()
            elif (err := self.errors.pop(0)) is not None:
                raise err

        session = Session(_Producer(), step, lambda: None)  # type: ignore[arg-type]
        session.close = lambda in_doubt: self.closed.append((name, in_doubt))  # type: ignore[method-assign]
        return session


def test_a_transaction_in_doubt_opens_a_new_session_and_the_loop_goes_on() -> None:
    svc = _Service(None, TransactionInDoubt("commit timed out"), None)
    assert run_recovering(svc.open, svc.stopper, "test service") == 1
    assert svc.opened == ["session 1", "session 2"]
    assert svc.closed == [("session 1", True), ("session 2", False)]


def test_a_fenced_producer_is_not_recovered() -> None:
    svc = _Service(TransactionInDoubt("fenced", fenced=True))
    with pytest.raises(TransactionInDoubt, match="fenced"):
        run_recovering(svc.open, svc.stopper, "test service")
    assert svc.opened == ["session 1"] and svc.closed == [("session 1", True)]


def test_recoveries_that_never_hold_are_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_io, "RECOVERIES_IN_A_ROW", 2)
    svc = _Service(*[TransactionInDoubt("commit timed out")] * 5)
    with pytest.raises(TransactionInDoubt, match="commit timed out"):
        run_recovering(svc.open, svc.stopper, "test service")
    assert len(svc.opened) == 3


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "nan", "181"])
def test_a_bad_commit_timeout_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"TICKFLOW_COMMIT_TIMEOUT_S='{raw}' is refused"):
        commit_timeout_s({"TICKFLOW_COMMIT_TIMEOUT_S": raw})
    assert commit_timeout_s({}) == 60.0 and commit_timeout_s({"TICKFLOW_COMMIT_TIMEOUT_S": "5"}) == 5.0


def test_aborts_that_never_end_are_raised_after_the_attempts() -> None:
    abortable = KafkaError(KafkaError._STATE, "again", txn_requires_abort=True)
    p = _Producer(*[abortable] * 3)
    with pytest.raises(TransactionInDoubt, match="3 transactions aborted in a row"):
        transact(p, [], _offsets, attempts=3)  # type: ignore[arg-type]
    assert p.calls.count("abort") == 3


class _StuckOffsets(_Producer):
    """send_offsets_to_transaction never returns, whatever its timeout (librdkafka 5456)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def send_offsets_to_transaction(self, offsets: list[int], meta: str, timeout: float) -> None:
        self.calls.append("offsets")
        self.release.wait(30)


def test_a_call_that_ignores_its_timeout_is_abandoned_as_a_transaction_in_doubt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_COMMIT_TIMEOUT_S", "0.2")
    monkeypatch.setattr(kafka_io, "STUCK_GRACE_S", 0.3)
    p = _StuckOffsets()
    started = time.monotonic()
    with pytest.raises(TransactionInDoubt, match=r"registering the consumed offsets did not return within 0\.5 s"):
        transact(p, RECORDS, _offsets)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5 and "commit" not in p.calls
    p.release.set()


def test_after_an_abandoned_call_the_next_transaction_runs_on_a_thread_of_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_COMMIT_TIMEOUT_S", "0.1")
    monkeypatch.setattr(kafka_io, "STUCK_GRACE_S", 0.1)
    stuck = _StuckOffsets()
    with pytest.raises(TransactionInDoubt, match="did not return"):
        transact(stuck, RECORDS, _offsets)  # type: ignore[arg-type]
    fresh = _Producer()  # the recovery's new producer: its calls must not queue behind the stuck one
    transact(fresh, RECORDS, _offsets)  # type: ignore[arg-type]
    assert fresh.calls[-2:] == [("offsets", (7,), "group"), "commit"]
    stuck.release.set()
