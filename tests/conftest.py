"""Shared fixtures: a real index built once per session from the real standard, in a temp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.index import build_index

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
STANDARD = CORPUS / "DB1302-T-589-2024.txt"


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
