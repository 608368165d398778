"""The record of the policy registry (topic ``policies``, compacted, key ``policy_id``).

One ``PolicyRecord`` per write holds everything about a policy, so compaction (which keeps the newest
record of each key) loses nothing: the serving version with its bundle carried in the record (a
deterministic tar.gz of the bundle directory, base64 in the JSON, with its sha256 and size), the
previous version (what ``rollback`` restores), the decision this write made, and the decisions before
it (``history``, newest last, the last ``HISTORY_KEEP``). The bundle bytes are checked against their
sha256 when unpacked; the trader then verifies the bundle itself (``trader.policy.bundle.load``:
signature, checksums, golden outputs) before serving it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from contracts.messages import EpochMs, Message, Name

DecisionKind = Literal["promoted", "rejected", "rolled_back"]
HISTORY_KEEP = 500  # decisions kept in a record (about 1.5 kB each): years of a retrain every 6 hours
MAX_BUNDLE_BYTES = 1_500_000  # a packed bundle above this is refused: two of them must fit in one record
MAX_RECORD_BYTES = 4 * 1024 * 1024  # the policies topic's max.message.bytes, and its producer's limit


class RegistryError(ValueError):
    """A registry read or write cannot go on; the message names the policy and what is wrong."""


class Window(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A span of bars, by bar end time (UTC ms), both ends included."""

    start_ts: EpochMs
    end_ts: EpochMs
    bars: Annotated[int, msgspec.Meta(ge=0)] = 0


class PackedBundle(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A policy bundle travelling in a record: its files as a deterministic tar.gz."""

    version: Name  # the bundle's policy_version
    algo: Name
    sha256: str  # of ``data``
    size: Annotated[int, msgspec.Meta(ge=0)]
    data: bytes  # base64 in JSON
    training_window: Window | None = None


class Decision(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One decision on a policy: a version promoted, rejected or rolled back, by the gate or by hand."""

    kind: DecisionKind
    version: Name  # the version decided on: the challenger, the version promoted, or the one rolled back
    serving: Name | None  # the version serving after the decision
    ts: EpochMs
    by: Literal["gate", "hand", "trader"]  # trader: its automatic rollback (trader.swap)
    reason: str
    figures: dict[str, Any] = {}  # the gate's figures (trader.policy.gate.GateResult.figures)
    training_window: Window | None = None  # of the version decided on
    test_window: Window | None = None  # the bars the gate scored (after the training window)


class PolicyRecord(Message, frozen=True, kw_only=True):
    """The state of one policy after a decision: what serves, what served before, and every decision."""

    policy_id: Name
    revision: Annotated[int, msgspec.Meta(ge=1)]  # 1 for the first write of a policy, then one more per write
    serving: PackedBundle | None
    previous: PackedBundle | None
    decision: Decision  # the decision this record was written for (also the last of ``history``)
    history: list[Decision]


BUNDLE_FILE_MODE = 0o644


def pack(directory: Path, version: str, algo: str, training_window: Window | None = None) -> PackedBundle:
    """The regular files of ``directory`` as a tar.gz that depends on their names and bytes only."""
    directory = Path(directory)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w",
                                                                          format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.iterdir()):
            if not path.is_file() or path.is_symlink():
                raise RegistryError(f"{path} is not a regular file; a bundle directory holds plain files only")
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = len(data), BUNDLE_FILE_MODE, 0
            tar.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    if len(blob) > MAX_BUNDLE_BYTES:
        raise RegistryError(f"the bundle in {directory} packs to {len(blob):,} bytes; the registry carries bundles "
                            f"of at most {MAX_BUNDLE_BYTES:,} bytes")
    return PackedBundle(version=version, algo=algo, sha256=hashlib.sha256(blob).hexdigest(), size=len(blob),
                        data=blob, training_window=training_window)


def unpack(packed: PackedBundle, directory: Path) -> Path:
    """Write the bundle's files into ``directory`` (created, must be empty) after checking its sha256;
    refuse members that are not plain files with plain names."""
    digest = hashlib.sha256(packed.data).hexdigest()
    if digest != packed.sha256 or len(packed.data) != packed.size:
        raise RegistryError(f"bundle {packed.version}: its bytes hash to {digest[:16]}... ({len(packed.data)} bytes), "
                            f"the record says {packed.sha256[:16]}... ({packed.size} bytes)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise RegistryError(f"{directory} is not empty; a bundle is unpacked into an empty directory")
    try:
        with tarfile.open(fileobj=io.BytesIO(packed.data), mode="r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile() or "/" in member.name or member.name in ("", ".", ".."):
                    raise RegistryError(f"bundle {packed.version}: member {member.name!r} is not a plain file")
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has a stream
                (directory / member.name).write_bytes(source.read())
    except (tarfile.TarError, OSError, EOFError) as err:
        raise RegistryError(f"bundle {packed.version}: not a readable tar.gz: {err}") from err
    return directory
