"""The name rule: the published pattern and the validator agree, and the admin CLI's paths
(accounts) keep to it."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from hpsearch.db import accounts
from hpsearch.db.migrate import upgrade
from hpsearch.db.names import NAME_PATTERN, PRESET_NAME_PATTERN, REFUSED_CATEGORIES, printable
from hpsearch.db.session import session_scope

HPSEARCH = str(Path(sys.executable).parent / "hpsearch")


def refused(char: str) -> bool:
    try:
        printable(f"a{char}b")
    except ValueError:
        return True
    return False


def test_the_published_pattern_refuses_exactly_what_the_validator_does_in_the_bmp() -> None:
    pattern = re.compile(NAME_PATTERN)
    disagree = [
        f"U+{code:04X}"
        for code in range(0x10000)
        if not 0xD800 <= code <= 0xDFFF
        and (pattern.match(f"a{chr(code)}b") is None) != refused(chr(code))
    ]
    assert disagree == []


def test_beyond_the_bmp_the_validator_refuses_format_characters() -> None:
    assert refused("\U000e0041") and refused("\U0001d173")  # a tag letter, a musical format
    assert not refused("\U0001f600")  # an emoji is a name's business
    assert unicodedata.category("\U000e0041") in REFUSED_CATEGORIES


@pytest.mark.parametrize("name", [".", "..", "../x", "a/b", "-a", ".hidden", "é"])
def test_preset_names_never_walk_paths(name: str) -> None:
    assert re.match(PRESET_NAME_PATTERN, name) is None


def test_accounts_refuse_hostile_team_user_and_token_names(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        with pytest.raises(accounts.AccountError, match="U\\+001B") as caught:
            accounts.create_team(session, "evil\x1b[2J")
        assert caught.value.field == "team"
        with pytest.raises(accounts.AccountError, match="1 to 100"):
            accounts.create_user(session, "")
        user = accounts.create_user(session, "ana")
        with pytest.raises(accounts.AccountError, match="U\\+2028"):
            accounts.issue_token(session, user.id, "a\u2028b", None)


def test_the_admin_cli_refuses_a_hostile_name_without_a_trace(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'admin.db'}"
    done = subprocess.run(
        [HPSEARCH, "admin", "create-team", "red\x1b[31m", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "U+001B" in done.stdout and "Traceback" not in done.stdout + done.stderr
