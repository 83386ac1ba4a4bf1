"""The system-tool rule in conftest: a missing tool skips locally and fails under ``CI=true``."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import require_tool, skip_or_fail

MISSING = "cqo-no-such-tool"


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=f"CI=true.*{MISSING} not found.*system-deps"):
        require_tool(MISSING, hint="run `make system-deps`")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} not found.*system-deps"):
        require_tool(MISSING, hint="run `make system-deps`")
    with pytest.raises(pytest.skip.Exception, match=r"^no poppler$"):
        skip_or_fail("no poppler")


def test_first_tool_on_path_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_tool(MISSING, "sh", hint="") == shutil.which("sh")
