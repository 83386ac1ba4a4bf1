"""Shared fixtures: a real index built once per session from the real standard, in a temp dir.

Also the one rule for system tools (Chromium, LibreOffice, poppler): a test that needs a missing
one is skipped locally (``-ra`` lists it) and fails when ``CI=true``, so a green CI run cannot
hide browser or rendering tests that never ran.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.index import build_index

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
STANDARD = CORPUS / "DB1302-T-589-2024.txt"


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set to ``true`` (or ``1``)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true"}


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test locally; under ``CI=true`` fail it with the same reason."""
    if in_ci():
        pytest.fail(f"CI=true, so this is a failure, not a skip: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(*names: str, hint: str) -> str:
    """The path of the first of ``names`` on PATH, else :func:`skip_or_fail` with ``hint``."""
    for name in names:
        if path := shutil.which(name):
            return path
    skip_or_fail(f"{' or '.join(names)} not found on PATH; {hint}")


def copy_home(home: Path, dst: Path) -> Path:
    """A private copy of the session home (corpus and built index) that a test may change."""
    shutil.copytree(home, dst)
    return dst


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project home with corpus/ (the real standard and its expansions) and a built index/."""
    h = tmp_path_factory.mktemp("cqo-home")
    shutil.copytree(CORPUS, h / "corpus")
    build_index(Settings.load(home=h), progress=lambda _m: None)
    return h


@pytest.fixture(scope="session")
def settings(home: Path) -> Settings:
    return Settings.load(home=home)


@pytest.fixture(scope="session")
def assistant(settings: Settings) -> Assistant:
    return Assistant.load(settings)


def start_redis(d: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A real ``redis-server`` (Debian's package) on a loopback port (a free one unless
    ``port``), data in ``d``, nothing saved: the process and its URL. Missing binary: skipped
    locally, a failure with ``CI=true``."""
    exe = require_tool("redis-server", hint="apt-get install redis-server (make system-deps)")
    from tests.http_helpers import free_port, launch_redis

    d.mkdir(parents=True, exist_ok=True)
    for _ in range(5):  # a free port may be taken before redis binds it: take another
        with contextlib.suppress(RuntimeError):
            return launch_redis(exe, d, port or free_port())
    log = (d / "redis.log").read_text() if (d / "redis.log").exists() else ""
    pytest.fail(f"redis-server did not start: {log[-500:]}")


def start_chroma(d: Path) -> tuple[subprocess.Popen, str]:
    """A real Chroma server (``chroma run``, the venv's chromadb) on a free loopback port, data in
    ``d``: the process and its URL, once its heartbeat answers."""
    import httpx

    from tests.http_helpers import free_port

    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        skip_or_fail(f"{exe} not found; the chromadb package installs it")
    d.mkdir(parents=True, exist_ok=True)
    log = d / "chroma.log"
    for _ in range(3):  # a free port may be taken before chroma binds it: take another
        port = free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(exe), "run", "--path", str(d / "db"), "--host", "127.0.0.1",
                 "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                time.sleep(0.1)
        proc.kill()
        proc.wait()
    pytest.fail(f"chroma run did not start: {log.read_text(errors='replace')[-500:]}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's redis-server (``start_redis``): its URL."""
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def redis_url(redis_server: str) -> str:
    """The session's redis-server, emptied for this test."""
    import redis

    redis.Redis.from_url(redis_server).flushall()
    return redis_server
