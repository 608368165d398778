"""README's settings tables are the settings structs': every variable, its default and what it allows; and
every service variable README names anywhere exists (it named COSTS__FEE_BPS, which nothing read)."""

from __future__ import annotations

import re

import msgspec
import pytest

from contracts.settings import settings_of
from paper.matching import PaperSettings
from streams.spec import StreamsSettings
from tests.helpers import REPO
from trader.service import TraderSettings

README = (REPO / "README.md").read_text()
SERVICES: dict[str, type[msgspec.Struct]] = {"TRADER": TraderSettings, "PAPER": PaperSettings,
                                             "STREAMS": StreamsSettings}
_ROW = re.compile(r"^\| `((?:TRADER|PAPER|STREAMS)__[A-Z0-9_]+)` \| (.*?) \| (.*?) \| (.*?) \|$", re.M)
_NAME = re.compile(r"(?<![A-Z0-9_])((?:TRADER|PAPER|STREAMS)(?:__[A-Z0-9]+(?:_[A-Z0-9]+)*)+)(?![A-Z0-9_])")
_BARE = re.compile(r"(?<![A-Z0-9_])(?:COSTS|RISK)__[A-Z0-9_]+")


def _documented() -> dict[str, tuple[str, str, str]]:
    rows = {m.group(1): (m.group(2), m.group(3), m.group(4)) for m in _ROW.finditer(README)}
    assert rows, "README has no settings tables"
    return rows


@pytest.mark.parametrize("prefix", list(SERVICES))
def test_the_tables_list_every_setting_with_its_default_and_range(prefix: str) -> None:
    rows = _documented()
    code = {s.var: s for s in settings_of(SERVICES[prefix], prefix)}
    documented = {v for v in rows if v.startswith(prefix + "__")}
    assert documented == set(code), f"README lacks {set(code) - documented}, names unknown {documented - set(code)}"
    for var, s in code.items():
        default, allowed, meaning = rows[var]
        assert (default, allowed) == (s.shown_default(), s.allowed()), f"{var}: README says {default!r}, " \
            f"{allowed!r}; the code has {s.shown_default()!r}, {s.allowed()!r}"
        assert meaning.strip(), f"{var} has no meaning in README"


def test_every_service_variable_named_in_the_readme_exists() -> None:
    known = {s.var for prefix, kind in SERVICES.items() for s in settings_of(kind, prefix)}
    prose = "\n".join(line for line in README.splitlines() if "is not a TRADER setting" not in line)  # the example
    named = set(_NAME.findall(prose))
    assert named - known == set(), f"README names variables no service reads: {sorted(named - known)}"
    bare = _BARE.findall(README)
    assert bare == [], f"README names variables without their service prefix: {bare}"
