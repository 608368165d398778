"""Typed settings from the environment.

Each service declares a frozen msgspec Struct of its settings; ``load(Settings, "TRADER")`` fills it
from variables such as ``TRADER__RISK__MAX_DRAWDOWN`` (nested structs are separated by ``__``).
Ranges are declared on the fields (``Annotated[float, msgspec.Meta(gt=0, le=1)]``); a field whose
``Meta`` carries ``extra={"off": True}`` is a limit that ``off`` (or ``inf``) switches off, and
``extra={"allowed": "..."}`` says in words what a text field accepts. Every
value is checked at start, and a bad one stops the service with one line naming the variable, the
value and what is allowed::

    TRADER__RISK__MAX_DRAWDOWN='2' is refused: above the maximum; allowed: a number > 0 and <= 1

Numbers must be finite. A variable under the prefix that names no setting is refused too, with the
nearest known name (a typo never runs silently on the default).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from contracts.errors import SettingsError

S = TypeVar("S", bound=msgspec.Struct)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
OFF_WORDS = ("off", "inf")


@dataclass(frozen=True)
class Setting:
    """One environment variable of a settings struct."""

    var: str
    path: tuple[str, ...]  # field names from the top struct down
    type: Any
    default: Any

    @property
    def info(self) -> msgspec.inspect.Type:
        return msgspec.inspect.type_info(self.type)

    @property
    def can_be_off(self) -> bool:
        info = self.info
        return isinstance(info, msgspec.inspect.Metadata) and bool((info.extra or {}).get("off"))

    def allowed(self) -> str:
        """What the variable accepts, in words (also the README's 'allowed' column)."""
        info = self.info
        if isinstance(info, msgspec.inspect.Metadata) and "allowed" in (info.extra or {}):
            return str(info.extra["allowed"])  # type: ignore[index]
        base = info.type if isinstance(info, msgspec.inspect.Metadata) else info
        if isinstance(base, msgspec.inspect.LiteralType):
            return " or ".join(str(v) for v in base.values)
        if isinstance(base, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            kind = "an integer" if isinstance(base, msgspec.inspect.IntType) else "a number"
            bounds = [f"{op} {_num(v)}" for op, v in ((">", base.gt), (">=", base.ge), ("<", base.lt),
                                                       ("<=", base.le)) if v is not None]
            text = kind + (" " + " and ".join(bounds) if bounds else "")
            return text + (", or off" if self.can_be_off else "")
        if isinstance(base, msgspec.inspect.StrType):
            return "text" + (f" matching {base.pattern}" if base.pattern else "")
        return str(self.type)

    def shown_default(self) -> str:
        if isinstance(self.default, float) and math.isinf(self.default):
            return "off"
        if isinstance(self.default, int | float) and not isinstance(self.default, bool):
            return _num(self.default)
        return str(self.default)


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}" if abs(v) >= 100_000 else str(int(v))
    return f"{v:g}"


def settings_of(kind: type[msgspec.Struct], prefix: str) -> list[Setting]:
    """Every variable ``kind`` reads under ``prefix``, in declaration order."""
    return list(_walk(kind, prefix.upper(), (), kind()))


def _walk(kind: type[msgspec.Struct], prefix: str, path: tuple[str, ...], defaults: Any) -> Iterator[Setting]:
    for field in msgspec.structs.fields(kind):
        var = f"{prefix}__{field.name.upper()}"
        default = getattr(defaults, field.name)
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            yield from _walk(field.type, var, (*path, field.name), default)
        else:
            yield Setting(var, (*path, field.name), field.type, default)


def load(kind: type[S], prefix: str, env: Mapping[str, str] | None = None) -> S:
    """Build ``kind`` from ``PREFIX__FIELD`` variables, falling back to the struct's defaults."""
    env = os.environ if env is None else env
    settings = settings_of(kind, prefix)
    known = {s.var for s in settings}
    head = prefix.upper() + "__"
    for name in sorted(env):
        if name.startswith(head) and name not in known:
            nearest = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.0)
            hint = f"; did you mean {nearest[0]}?" if nearest else ""
            raise SettingsError(f"{name} is not a {prefix.upper()} setting{hint}")
    values: dict[str, Any] = {}
    for s in settings:
        if s.var in env:
            node = values
            for part in s.path[:-1]:
                node = node.setdefault(part, {})
            node[s.path[-1]] = parse(s, env[s.var])
    try:
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as err:  # parse() checked each value: only a bug gets here
        raise SettingsError(f"invalid {prefix} settings: {err}") from err


def parse(s: Setting, raw: str) -> Any:
    """One variable's value, or SettingsError with the variable, the value and what is allowed."""
    text = raw.strip()
    if s.can_be_off and text.lower() in OFF_WORDS:
        return math.inf
    try:
        value = msgspec.convert(text, s.type, strict=False)
    except msgspec.ValidationError as err:
        if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise SettingsError(f"{s.var}={raw!r} is refused: not a finite number; allowed: {s.allowed()}") from None
        problem = str(err).split(" - at ")[0]
        problem = {"Expected `float`, got `str`": "not a number",
                   "Expected `int`, got `str`": "not an integer"}.get(problem, problem)
        if problem.startswith(("Expected `float` ", "Expected `int` ")):
            problem = "out of range"
        elif problem.startswith("Expected `str` "):
            problem = "not in the allowed form"
        raise SettingsError(f"{s.var}={raw!r} is refused: {problem}; allowed: {s.allowed()}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{s.var}={raw!r} is refused: not a finite number; allowed: {s.allowed()}")
    return value


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


SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaAuth:
    """Who a client is on a secure cluster: ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD`` and
    ``KAFKA_SASL_MECHANISM`` (default SCRAM-SHA-512). The password never shows in a repr."""

    username: str
    password: str = dataclasses.field(repr=False)
    mechanism: str = "SCRAM-SHA-512"


def kafka_auth(env: Mapping[str, str] | None = None) -> KafkaAuth | None:
    """The SASL identity of this process's Kafka clients; None (no authentication) without a username."""
    env = os.environ if env is None else env
    username = env.get("KAFKA_SASL_USERNAME", "").strip()
    password = env.get("KAFKA_SASL_PASSWORD", "")
    mechanism = env.get("KAFKA_SASL_MECHANISM", SASL_MECHANISMS[0]).strip().upper()
    if not username:
        if password:
            raise SettingsError("KAFKA_SASL_PASSWORD is set but KAFKA_SASL_USERNAME is not: set both (a secure "
                                "cluster writes them per service into TICKFLOW_HOME/kafka/credentials)")
        return None
    if not password:
        raise SettingsError(f"KAFKA_SASL_USERNAME={username!r} has no KAFKA_SASL_PASSWORD: set both")
    if mechanism not in SASL_MECHANISMS:
        raise SettingsError(f"KAFKA_SASL_MECHANISM={mechanism!r} is refused; allowed: {', '.join(SASL_MECHANISMS)}")
    return KafkaAuth(username, password, mechanism)


def tickflow_home(env: Mapping[str, str] | None = None) -> Path:
    """Where local state lives (broker data, logs, reports): ``TICKFLOW_HOME``, default ./.tickflow."""
    env = os.environ if env is None else env
    return Path(env.get("TICKFLOW_HOME", ".tickflow")).expanduser().resolve()
