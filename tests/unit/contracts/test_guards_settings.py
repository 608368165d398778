"""Every setting of every service is checked at start: a value loads with that value in effect, or the
service stops with one line naming the variable, the value and what is allowed. Typos under a known
prefix and values that would silently switch a limit off are refused."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.errors import SettingsError
from contracts.settings import load, settings_of
from paper.matching import PaperSettings
from streams.spec import StreamsSettings
from trader.service import TraderSettings

REPO = Path(__file__).resolve().parents[3]
SERVICES: dict[str, type[msgspec.Struct]] = {"TRADER": TraderSettings, "PAPER": PaperSettings,
                                             "STREAMS": StreamsSettings}


def _load(prefix: str, env: dict[str, str]) -> Any:
    loaded = load(SERVICES[prefix], prefix, env)
    return loaded.check() if isinstance(loaded, StreamsSettings) else loaded


@pytest.mark.parametrize(("var", "value"), [
    ("TRADER__RISK__MAX_NOTIONAL", "-5"), ("TRADER__RISK__MAX_NOTIONAL", "0"), ("TRADER__RISK__MAX_NOTIONAL", "nan"),
    ("TRADER__RISK__MAX_DRAWDOWN", "2"), ("TRADER__HTTP_PORT", "99999"), ("PAPER__PARTICIPATION", "2"),
    ("STREAMS__SESSION_TIMEOUT_S", "0"), ("TRADER__RISK__MAX_ORDERS_PER_MINUTE", "0"),
    ("TRADER__RISK__MAX_ORDERS_PER_MINUTE", "-3"), ("TRADER__RISK__STALE_AFTER_S", "-1"),
    ("TRADER__RISK__GAP_HOLD_S", "nan"), ("PAPER__COSTS__FEE_BPS", "abc"), ("TRADER__NOTIONAL", "inf"),
])
def test_the_issues_bad_values_are_refused_with_one_line(var: str, value: str) -> None:
    prefix = var.split("__")[0]
    with pytest.raises(SettingsError) as err:
        _load(prefix, {var: value})
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{var}={value!r}") and "allowed" in text, text


@pytest.mark.parametrize(("var", "nearest"), [
    ("TRADER__RISK__MAXDRAWDOWN", "TRADER__RISK__MAX_DRAWDOWN"), ("PAPER__PARTICIPATON", "PAPER__PARTICIPATION"),
    ("STREAMS__GRACEMS", "STREAMS__GRACE_MS"), ("PAPER__FEE_BPS", "PAPER__COSTS__FEE_BPS"),
])
def test_an_unknown_variable_under_a_known_prefix_names_the_nearest(var: str, nearest: str) -> None:
    with pytest.raises(SettingsError, match=f"^{var} is not a .* setting; did you mean {nearest}\\?$"):
        _load(var.split("__")[0], {var: "0.5"})


@pytest.mark.parametrize("word", ["off", "inf", "OFF"])
def test_limits_are_switched_off_only_by_the_documented_word(word: str) -> None:
    s = load(TraderSettings, "TRADER", {"TRADER__RISK__MAX_NOTIONAL": word, "TRADER__RISK__MAX_POSITION": word})
    assert math.isinf(s.risk.max_notional) and math.isinf(s.risk.max_position)
    with pytest.raises(SettingsError, match=r"MAX_DRAWDOWN=.* is refused"):
        load(TraderSettings, "TRADER", {"TRADER__RISK__MAX_DRAWDOWN": word})


def _expected(setting: Any, raw: str) -> Any:
    """What a raw value must load as, when it loads."""
    text = raw.strip()
    if setting.can_be_off and text.lower() in ("off", "inf"):
        return math.inf
    return msgspec.convert(text, setting.type, strict=False)


def _raws(setting: Any) -> st.SearchStrategy[str]:
    numbers = st.one_of(st.integers(-10**7, 10**7), st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from([0, 1, -1, 65535, 65536, 0.5, 2, 1e300, 6, 1800, 1000]))
    return st.one_of(numbers.map(str), st.text(max_size=12), st.sampled_from(["off", "inf", "nan", "", " 3 "]))


_ALL = [(prefix, s) for prefix, kind in SERVICES.items() for s in settings_of(kind, prefix)]


@pytest.mark.parametrize(("prefix", "setting"), _ALL, ids=[s.var for _, s in _ALL])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fuzz_every_value_is_in_effect_or_refused_with_one_line(prefix: str, setting: Any, data: Any) -> None:
    raw = data.draw(_raws(setting))
    if "\x00" in raw:
        return  # the environment cannot hold a NUL
    try:
        loaded = _load(prefix, {setting.var: raw})
    except SettingsError as err:
        text = str(err)
        assert "\n" not in text and text.startswith(setting.var), text
        return
    value: Any = loaded
    for part in setting.path:
        value = getattr(value, part)
    assert value == _expected(setting, raw), f"{setting.var}={raw!r} loaded as {value!r}"
    if isinstance(value, float):
        assert math.isfinite(value) or setting.can_be_off


@pytest.mark.parametrize(("args", "var", "value"), [
    (["trade", "--bundle", "/nonexistent"], "TRADER__RISK__MAX_NOTIONAL", "-5"),
    (["trade", "--bundle", "/nonexistent"], "TRADER__RISK__MAXDRAWDOWN", "0.5"),
    (["paper"], "PAPER__PARTICIPATION", "2"),
    (["streams", "worker"], "STREAMS__SESSION_TIMEOUT_S", "0"),
])
def test_each_service_stops_with_one_line_and_no_traceback(args: list[str], var: str, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADER__", "PAPER__", "STREAMS__"))}
    env.update({var: value, "KAFKA_BOOTSTRAP": "127.0.0.1:9", "PYTHONPATH": str(REPO)})
    done = subprocess.run([sys.executable, "-m", "tickflow", *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=REPO)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and var in lines[0], done.stderr
