"""JSON serialisation of contract messages: one encoder, one strict decoder per type."""

from __future__ import annotations

from functools import cache
from typing import TypeVar

import msgspec

from contracts.errors import ContractError
from contracts.messages import Message

M = TypeVar("M", bound=Message)

_encoder = msgspec.json.Encoder()


def encode(message: Message) -> bytes:
    """Serialise a message to compact JSON bytes (field order as declared)."""
    return _encoder.encode(message)


@cache
def _decoder(kind: type[M]) -> msgspec.json.Decoder[M]:
    return msgspec.json.Decoder(kind)


def decode(data: bytes | str, kind: type[M]) -> M:
    """Parse JSON into ``kind``, refusing unknown, missing or mistyped fields.

    Raises ContractError whose text names the offending field (msgspec reports it as ``$.field``).
    """
    try:
        return _decoder(kind).decode(data)
    except msgspec.ValidationError as err:
        raise ContractError(kind.__name__, str(err)) from err
    except msgspec.DecodeError as err:
        raise ContractError(kind.__name__, f"not valid JSON: {err}") from err


def to_dict(message: Message) -> dict[str, object]:
    """A plain dict of the message's fields (for pandas, logs and tests)."""
    result: dict[str, object] = msgspec.to_builtins(message)
    return result
