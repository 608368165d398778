"""Serving a policy from the registry: the version that decides, the swap to a newly promoted one, and
the automatic rollback (`tickflow trade --policy-id ID` without ``--bundle``).

At start ``RegistryServing.initial`` reads the registry (``contracts.policy_registry.latest``) and
serves ID's serving version, unpacked and verified by ``trader.policy.bundle.load`` (checksums,
signature, golden outputs, feature schema); when that one is refused, the previous version, when it
verifies. A thread of its own follows the registry (``policy_registry.follow``): a record whose serving
version is new is unpacked and verified there, off the decision path, and staged; the trader loop
takes it at its next step (``at_boundary``), between two batches of feature records, so no bar's
decision sees two versions. A version that fails verification is refused with one ERROR log line
(``Refused version V of policy ID ...: reason; version U keeps trading.``) and the serving one trades on.

The automatic rollback: with ``TRADER__ROLLBACK__MAX_DRAWDOWN`` set (off by default), after each step the
book's equity is compared with its peak since the swap. The peak goes into each portfolio snapshot beside the
version deciding, and a restarted trader (or an instance's rebuild) takes it back from its last snapshot when
the same version still serves, so a restart does not reset the drawdown (a new version starts afresh). When
the drawdown reaches the limit while a promoted version with a previous one serves, a ``rolled_back``
decision by ``trader`` with the figures is written to the registry (in a thread); the swap back comes through
the follower, as for a rollback by hand.

A SIGKILL at any point of a swap: orders and consumed offsets commit in one transaction, so what an
unfinished transaction decided, by either version, is aborted; the restarted process reads the registry
before its first decision and decides every bar after the committed offsets with the version serving
then. Each committed bar was decided by one version, and versions only follow the registry's revisions.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from contracts import PortfolioSnapshot, policy_registry
from contracts.policy_record import Decision, PackedBundle, PolicyRecord, RegistryError, unpack
from contracts.timeutil import now_ms
from trader.handler import PolicyTrader
from trader.policy import bundle as bundle_mod

log = logging.getLogger(__name__)
RETRY_S = 2.0  # after a failed registry read or rollback write


class RollbackSettings(msgspec.Struct, frozen=True, kw_only=True):
    # of the peak equity since the swap: write a rolled_back decision and serve the previous version (a
    # fraction; a drawdown never passes 1)
    max_drawdown: Annotated[float, Meta(gt=0, extra={"off": True})] = math.inf


class ServingError(ValueError):
    """The registry gives the trader nothing it can serve; the message names the policy and why."""


@dataclass(frozen=True)
class Staged:
    record: PolicyRecord
    bundle: bundle_mod.Bundle


class RegistryServing:
    """What serves policy ``policy_id``, read from and followed on the registry."""

    def __init__(self, bootstrap: str, policy_id: str, home: Path, settings: RollbackSettings | None = None) -> None:
        self.bootstrap, self.policy_id, self.settings = bootstrap, policy_id, settings or RollbackSettings()
        self.directory = home / "serving" / policy_id
        self.record: PolicyRecord | None = None  # the record whose serving version decides
        self.version = ""  # the version deciding (the record's serving one, or its previous when that was refused)
        self.schema = ""
        self.pending: Staged | None = None  # verified by the follower, taken at the next boundary
        self._seen = 0  # the newest registry revision considered
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._peak = math.nan  # equity since the swap
        self._rollback_at = 0.0  # monotonic time of the last rollback write started

    # -- start --------------------------------------------------------------------------------
    def initial(self) -> bundle_mod.Bundle:
        """The bundle to serve now: the registry's serving version, else its previous one; ServingError."""
        rec = policy_registry.latest(self.bootstrap, self.policy_id)
        if rec is None or rec.serving is None:
            known = ", ".join(sorted(policy_registry.records(self.bootstrap))) or "none yet"
            raise ServingError(f"policy {self.policy_id!r} has no serving version on the registry (policies with a "
                               f"record: {known}); promote one with `tickflow policy promote {self.policy_id} "
                               "--bundle DIR`, or pass --bundle")
        self._seen = rec.revision
        try:
            bundle = self._load(rec.serving)
        except (bundle_mod.BundleError, RegistryError) as err:
            if rec.previous is None:
                raise ServingError(f"policy {self.policy_id}: version {rec.serving.version} (registry revision "
                                   f"{rec.revision}) is refused: {err}; there is no previous version") from err
            log.error("Refused version %s of policy %s (registry revision %d): %s; serving the previous version "
                      "%s.", rec.serving.version, self.policy_id, rec.revision, err, rec.previous.version)
            try:
                bundle = self._load(rec.previous)
            except (bundle_mod.BundleError, RegistryError) as err2:
                raise ServingError(f"policy {self.policy_id}: version {rec.serving.version} is refused ({err}) and "
                                   f"so is the previous version {rec.previous.version} ({err2})") from err2
        self.record, self.version, self.schema = rec, bundle.version, bundle.feature_schema
        log.info("Policy %s serves version %s from registry revision %d (%s %s by %s).", self.policy_id,
                 bundle.version, rec.revision, rec.decision.kind, rec.decision.version, rec.decision.by)
        return bundle

    def _load(self, packed: PackedBundle) -> bundle_mod.Bundle:
        """Unpack (sha256 checked) into TICKFLOW_HOME/serving/<policy>/<version> and verify the bundle."""
        target = self.directory / packed.version
        shutil.rmtree(target, ignore_errors=True)
        return bundle_mod.load(unpack(packed, target), self.schema or None)

    # -- following ------------------------------------------------------------------------------
    def start(self) -> None:
        self._follower = threading.Thread(target=self._follow, name=f"registry-{self.policy_id}", daemon=True)
        self._follower.start()

    def stop(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join(10)

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                for rec in policy_registry.follow(self.bootstrap, self.policy_id, stopped=self._stop.is_set):
                    self.consider(rec)
            except Exception as err:  # a failed read is retried; the version serving trades on
                log.error("Following the registry for policy %s failed: %s; retrying in %.0f s.", self.policy_id,
                          err, RETRY_S)
                self._stop.wait(RETRY_S)

    def consider(self, rec: PolicyRecord) -> None:
        """Stage ``rec``'s serving version when it is new and verifies; log why when it is refused."""
        if rec.revision <= self._seen:
            return
        self._seen = rec.revision
        staged = self.pending
        deciding = staged.bundle.version if staged is not None else self.version
        if rec.serving is None:
            log.warning("Registry revision %d of policy %s has no serving version; version %s keeps trading.",
                        rec.revision, self.policy_id, deciding)
            return
        if rec.serving.version == deciding:
            with self._lock:  # the same version, a newer record (its previous version, its history)
                if self.pending is not None:
                    self.pending = Staged(rec, self.pending.bundle)
                else:
                    self.record = rec
            return
        try:
            bundle = self._load(rec.serving)
        except (bundle_mod.BundleError, RegistryError) as err:
            log.error("Refused version %s of policy %s (registry revision %d, %s by %s): %s; version %s keeps "
                      "trading.", rec.serving.version, self.policy_id, rec.revision, rec.decision.kind,
                      rec.decision.by, err, deciding)
            return
        log.info("Version %s of policy %s verified (registry revision %d, %s by %s); it decides from the next "
                 "batch of features.", bundle.version, self.policy_id, rec.revision, rec.decision.kind,
                 rec.decision.by)
        with self._lock:
            self.pending = Staged(rec, bundle)

    # -- at each step -----------------------------------------------------------------------------
    def at_boundary(self, trader: PolicyTrader) -> bundle_mod.Bundle:
        """Between two batches of feature records: swap ``trader`` to a staged version, check the drawdown
        since the swap; returns the bundle that decides from now on."""
        if self.pending is not None:
            with self._lock:
                staged, self.pending = self.pending, None
            if staged is not None:
                old = trader.version
                trader.swap(staged.bundle)
                self.record, self.version, self._peak = staged.record, staged.bundle.version, math.nan
                log.info("Policy %s swapped from version %s to %s (registry revision %d, %s by %s) after feature "
                         "ts %d; positions, book and halt carry over.", self.policy_id, old, trader.version,
                         staged.record.revision, staged.record.decision.kind, staged.record.decision.by,
                         trader.last_feature_ts)
        if self.settings.max_drawdown != math.inf:
            self._check_drawdown(trader)
        return trader.bundle

    @property
    def peak(self) -> float | None:
        """The book's peak equity since the version deciding began serving (None: no step since the swap)."""
        return None if math.isnan(self._peak) else self._peak

    def restore_peak(self, snap: PortfolioSnapshot) -> None:
        """Take the rollback's peak back from this book's last snapshot, when the version that wrote it serves."""
        if snap.rollback_peak is None or snap.policy_version != self.version:
            return
        if not snap.rollback_peak <= self._peak:  # nan (the start) or lower
            self._peak = snap.rollback_peak
            log.info("Policy %s version %s: the automatic rollback's peak equity %.2f since its swap, from the "
                     "portfolio snapshot at ts %d.", self.policy_id, self.version, self._peak, snap.ts)

    def _check_drawdown(self, trader: PolicyTrader) -> None:
        equity = trader.book.equity
        if not equity <= self._peak:  # the first step after a swap or the start (nan) sets the peak
            self._peak = equity
            return
        drawdown = 1.0 - equity / self._peak if self._peak > 0 else 0.0
        rec = self.record
        if (drawdown < self.settings.max_drawdown or rec is None or rec.previous is None
                or rec.decision.kind != "promoted" or self.version != (rec.serving.version if rec.serving else "")
                or time.monotonic() - self._rollback_at < RETRY_S):
            return
        self._rollback_at = time.monotonic()
        figures = {"drawdown": round(drawdown, 6), "limit": self.settings.max_drawdown,
                   "peak_equity": round(self._peak, 6), "equity": round(equity, 6),
                   "feature_ts": trader.last_feature_ts}
        reason = (f"live drawdown {drawdown:.2%} of version {self.version} since its swap passed "
                  f"TRADER__ROLLBACK__MAX_DRAWDOWN {self.settings.max_drawdown:.2%} (equity {equity:,.2f} from a "
                  f"peak of {self._peak:,.2f}, last feature ts {trader.last_feature_ts})")
        log.warning("Policy %s: %s; rolling back to %s.", self.policy_id, reason, rec.previous.version)
        threading.Thread(target=self._roll_back, args=(self.version, reason, figures), daemon=True,
                         name=f"rollback-{self.policy_id}").start()

    def _roll_back(self, version: str, reason: str, figures: dict[str, object]) -> None:
        """Write the rolled_back decision, unless the registry has moved on from ``version`` meanwhile."""
        try:
            current = policy_registry.latest(self.bootstrap, self.policy_id)
            if current is None or current.serving is None or current.serving.version != version:
                log.warning("No automatic rollback of policy %s: the registry no longer serves %s.", self.policy_id,
                            version)
                return
            back = current.previous.version if current.previous else None
            decision = Decision(kind="rolled_back", version=version, serving=back, ts=now_ms(), by="trader",
                                reason=reason, figures=figures)
            policy_registry.write(self.bootstrap, policy_registry.rolled_back(current, self.policy_id, decision))
        except Exception as err:  # logged; the next step past the limit tries again
            log.error("The automatic rollback of policy %s from %s failed: %s; retrying at the next step past the "
                      "limit.", self.policy_id, version, err)
