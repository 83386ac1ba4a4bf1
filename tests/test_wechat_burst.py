"""bench/wechat_burst.py against the real pieces (redis-server, the API stand-in, `cqo serve
--workers 2`), with 5 users: every message answered once, computed once, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool


@pytest.mark.slow
def test_burst_of_five(home: Path) -> None:
    require_tool("redis-server", hint="apt-get install redis-server (make system-deps)")
    from bench.wechat_burst import burst, report

    out = burst(users=5, workers=2, home=home, settle=30)
    k = out["kinds"]
    assert k["passive"] + k["async"] == 5 and k["lost"] == k["retry"] == 0
    assert out["computed"] == {1: 5}  # every message computed once, over both workers
    assert set(out["sends"]) <= {0, 1} and out["passive_and_sent"] == 0
    assert out["sends"].get(1, 0) == k["async"]  # an API send for each "success", no other
    lines = report(out, "python bench/wechat_burst.py --users 5")
    assert any(line.startswith("| lost | 0 (0 %)") for line in lines)
