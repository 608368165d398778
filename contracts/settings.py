"""Typed settings from the environment.

Each service declares a frozen msgspec Struct of its settings; ``load(Settings, "TRADER")`` fills it
from variables such as ``TRADER__RISK__MAX_DRAWDOWN`` (nested structs are separated by ``__``).
A bad value stops the service at start with a sentence that names the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from contracts.errors import SettingsError

S = TypeVar("S", bound=msgspec.Struct)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def load(kind: type[S], prefix: str, env: Mapping[str, str] | None = None) -> S:
    """Build ``kind`` from ``PREFIX__FIELD`` variables, falling back to the struct's defaults."""
    env = os.environ if env is None else env
    values = _collect(kind, prefix.upper(), env)
    try:
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as err:
        raise SettingsError(f"invalid {prefix} settings: {err}") from err


def _collect(kind: type[msgspec.Struct], prefix: str, env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(kind):
        name = f"{prefix}__{field.name.upper()}"
        ftype = field.type
        if isinstance(ftype, type) and issubclass(ftype, msgspec.Struct):
            nested = _collect(ftype, name, env)
            if nested:
                values[field.name] = nested
            continue
        if name not in env:
            continue
        raw = env[name]
        try:
            values[field.name] = msgspec.convert(raw, ftype, strict=False)
        except msgspec.ValidationError as err:
            raise SettingsError(f"{name}={raw!r} is not a valid value: {err}") from err
    return values


def kafka_bootstrap(env: Mapping[str, str] | None = None) -> str:
    """The broker address every command and service uses: ``KAFKA_BOOTSTRAP`` (host:port[,...])."""
    env = os.environ if env is None else env
    value = env.get("KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP).strip()
    if not value or not all(_HOSTPORT.match(part) for part in value.split(",")):
        raise SettingsError(
            f"KAFKA_BOOTSTRAP={value!r} is not a list of host:port addresses "
            f"(for example {DEFAULT_BOOTSTRAP})"
        )
    return value


def tickflow_home(env: Mapping[str, str] | None = None) -> Path:
    """Where local state lives (broker data, logs, reports): ``TICKFLOW_HOME``, default ./.tickflow."""
    env = os.environ if env is None else env
    return Path(env.get("TICKFLOW_HOME", ".tickflow")).expanduser().resolve()
