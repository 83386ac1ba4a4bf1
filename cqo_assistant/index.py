"""The on-disk index: Chroma (dense vectors) + bm25s (jieba BM25) + ``manifest.json``.

Layout of ``index/``::

    manifest.json   format version, embedder name and dimension, sha256 of each corpus file,
                    clause count, build time — loading refuses any mismatch
    chunks.json     the chunk texts (one per clause) in index order
    bm25/           bm25s index over jieba tokens, plus our token vocabulary
    bm25_bigram/    bm25s index over Chinese character pairs (robust to typos and word splits)
    bm25_expansion/ bm25s index over each clause's search-only expansion (English rendering and
                    the ways people ask, from ``corpus/<stem>.expansions.json``)
    bank/           the question bank's ``train`` questions (``corpus/<stem>.bank.jsonl``):
                    ``entries.json``, a bm25s index over their words, and ``vectors.npy``, their
                    query embeddings (3,000 × 384 float32 is 4.6 MB: a matrix product per
                    question, no ANN needed at this size)
    chroma/         chromadb PersistentClient store, collection ``cqo_clauses``

Why not llama-index's BM25Retriever: it ignores a custom tokenizer (bm25s underneath), so Chinese
scores 0. Why embeddings are always passed to Chroma: its default embedding function downloads a
model. Collection names must be ASCII.

A build goes into a temp dir beside ``index/`` and is swapped in with renames, so a reader never
sees half an index. Embeddings of chunks whose text did not change are taken from the previous
index (by sha256 of chunk text + embedder), so only changed corpus files are re-embedded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from . import segment
from .bank import BankEntry, bank_path, load_bank
from .chunk import Chunk, make_chunks
from .embed import Embedder, get_embedder
from .errors import REBUILD_HINT, IndexMissingError, IndexStaleError
from .parse import Standard, corpus_files, expansions_path, load_corpus, load_expansions
from .settings import Settings

FORMAT_VERSION = 4  # 4: search-mode words, the question bank
COLLECTION = "cqo_clauses"
Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def corpus_hashes(corpus_dir: Path) -> dict[str, str]:
    """sha256 of every corpus file and of its sidecars (expansions, question bank) if any."""
    files = corpus_files(corpus_dir)
    files += [x for p in files for x in (expansions_path(p), bank_path(p)) if x.is_file()]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# the word-splitting data the BM25 indexes are built with (not the query-time glossary)
SEGMENTER_FILES = ("userdict.txt", "stopwords.txt")


def segmenter_hash() -> str:
    """sha256 of the domain dictionary and stop words: the BM25 vocabularies depend on them, so
    an index built before they changed (an upgrade of this package) is stale."""
    h = hashlib.sha256()
    for name in SEGMENTER_FILES:
        h.update((segment.DATA_DIR / name).read_bytes())
    return h.hexdigest()


def _chunk_key(chunk: Chunk, embedder_name: str) -> str:
    key = f"{embedder_name}\n{chunk.clause_id}\n{chunk.passage}"
    return hashlib.sha256(key.encode()).hexdigest()


def chroma_client(path: Path | None = None, url: str = "") -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    cs = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if url:
        from urllib.parse import urlparse

        u = urlparse(url)
        return chromadb.HttpClient(
            host=u.hostname or "127.0.0.1",
            port=u.port or 8000,
            ssl=u.scheme == "https",
            settings=cs,
        )
    assert path is not None
    # Chroma caches one system per path for the whole process; after an atomic swap the path
    # holds a different store, so a cached system would serve the old data.
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return chromadb.PersistentClient(path=str(path), settings=cs)


@dataclass
class BM25Index:
    """bm25s over a token list with our own vocabulary (unknown query tokens are dropped)."""

    model: bm25s.BM25
    vocab: dict[str, int]

    @classmethod
    def build(
        cls, texts: list[str], tokenize: Callable[[str], list[str]] = segment.tokenize
    ) -> BM25Index:
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(t, len(vocab)) for t in tokenize(x)] for x in texts]
        model = bm25s.BM25(k1=1.2, b=0.75)
        model.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
        return cls(model, vocab)

    def scores(self, tokens: list[str]) -> np.ndarray:
        ids = [self.vocab[t] for t in tokens if t in self.vocab]
        if not ids:
            return np.zeros(self.model.scores["num_docs"], dtype=np.float32)
        return np.asarray(self.model.get_scores_from_ids(ids), dtype=np.float32)

    def save(self, path: Path) -> None:
        self.model.save(str(path))
        (path / "cqo_vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), "utf-8")

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        model = bm25s.BM25.load(str(path))
        vocab = json.loads((path / "cqo_vocab.json").read_text("utf-8"))
        return cls(model, vocab)


@dataclass
class BankIndex:
    """The bank's indexed questions, their words (BM25) and meanings (unit vectors), and which
    clause each answers; a clause's score in a channel is the best of its questions'."""

    entries: list[BankEntry]
    bm25: BM25Index | None  # None for an empty bank (bm25s cannot index nothing)
    vectors: np.ndarray  # (n, dim), unit length, query embeddings
    links: tuple[np.ndarray, np.ndarray]  # (entry, clause position) for answerable entries
    answerable: np.ndarray  # (n,) bool

    @classmethod
    def make(
        cls, entries: list[BankEntry], bm25: BM25Index | None, vectors: np.ndarray, ids: list[str]
    ) -> BankIndex:
        pos = {cid: i for i, cid in enumerate(ids)}
        pairs = [(e, pos[c]) for e, x in enumerate(entries) for c in x.clauses if c in pos]
        links = tuple(np.array(v, dtype=np.int64) for v in zip(*pairs, strict=True)) or (
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
        )
        ok = np.array([x.answerable for x in entries], dtype=bool)
        return cls(entries, bm25, vectors.astype(np.float32), links, ok)  # type: ignore[arg-type]

    def per_clause(self, entry_scores: np.ndarray, n_clauses: int) -> np.ndarray:
        """Best score of each clause's questions (0 for a clause with none)."""
        out = np.zeros(n_clauses, dtype=np.float32)
        e, c = self.links
        if len(e):
            np.maximum.at(out, c, entry_scores[e])
        return out

    def save(self, path: Path, keys: list[str]) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self.bm25 is not None:
            self.bm25.save(path / "bm25")
        np.save(path / "vectors.npy", self.vectors)
        rows = [{**x.__dict__, "key": k} for x, k in zip(self.entries, keys, strict=True)]
        (path / "entries.json").write_text(json.dumps(rows, ensure_ascii=False), "utf-8")

    @classmethod
    def load(cls, path: Path, ids: list[str]) -> BankIndex:
        rows = json.loads((path / "entries.json").read_text("utf-8"))
        entries = [
            BankEntry(
                **{k: (tuple(v) if k == "clauses" else v) for k, v in r.items() if k != "key"}
            )
            for r in rows
        ]
        bm25 = BM25Index.load(path / "bm25") if entries else None
        return cls.make(entries, bm25, np.load(path / "vectors.npy"), ids)


STAND_IN = "clause-text"  # the style of a bank entry that stands in for a clause with none


def stand_ins(chunks: list[Chunk], bank: list[BankEntry]) -> list[BankEntry]:
    """A clause no bank question answers (a standard without a bank) is found in the bank
    channels by its own text, so those channels do not rank its standard's clauses last."""
    asked = {c for x in bank for c in x.clauses}
    return [
        BankEntry(f"clause:{c.clause_id}", c.text, (c.clause_id,), "answerable", STAND_IN, "train")
        for c in chunks
        if c.clause_id not in asked
    ]


def _bank_key(entry: BankEntry, embedder_name: str) -> str:
    return hashlib.sha256(f"{embedder_name}\n{entry.question}".encode()).hexdigest()


def _previous_bank(index_dir: Path) -> dict[str, np.ndarray]:
    """Bank vectors to reuse, keyed by (embedder, question) hash: those of the current index
    and of the machine's cache (``_bank_cache``), so a second index on the same machine (a test
    home, a rebuild into a new folder) does not embed 4,000 questions again (~40 s)."""
    out: dict[str, np.ndarray] = {}
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = np.load(_bank_cache(), allow_pickle=False)
        out.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
    with contextlib.suppress(OSError, ValueError, KeyError):
        rows = json.loads((index_dir / "bank" / "entries.json").read_text("utf-8"))
        vectors = np.load(index_dir / "bank" / "vectors.npy")
        out.update({r["key"]: v for r, v in zip(rows, vectors, strict=True)})
    return out


def _bank_cache() -> Path:
    """Embeddings are a pure function of (embedder, text), so a cache beside jieba's in the
    temp dir is safe to share and to lose."""
    return Path(tempfile.gettempdir()) / "cqo_bank_vectors.npz"


def _save_bank_cache(keys: list[str], vectors: np.ndarray) -> None:
    path = _bank_cache()
    with contextlib.suppress(OSError):
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=vectors)
        os.replace(tmp, path)


def build_bank(
    entries: list[BankEntry],
    embedder: Embedder,
    previous: dict[str, np.ndarray],
    progress: Progress,
) -> tuple[BM25Index | None, np.ndarray, list[str]]:
    """BM25 and query embeddings of the bank's questions (unchanged ones reused)."""
    keys = [_bank_key(x, embedder.name) for x in entries]
    vectors = np.zeros((len(entries), embedder.dim), dtype=np.float32)
    todo = []
    for i, k in enumerate(keys):
        if k in previous and len(previous[k]) == embedder.dim:
            vectors[i] = previous[k]
        else:
            todo.append(i)
    batch = 64
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        vectors[idx] = embedder.embed_queries([entries[i].question for i in idx])
        progress(f"[3/5] bank: embedded {min(start + batch, len(todo))}/{len(todo)} questions")
    if todo:
        _save_bank_cache(keys, vectors)
    bm25 = BM25Index.build([x.question for x in entries]) if entries else None
    return bm25, vectors, keys


def _previous_embeddings(index_dir: Path, embedder_name: str) -> dict[str, list[float]]:
    """Embeddings of the current index keyed by chunk hash, to reuse for unchanged chunks."""
    try:
        manifest = json.loads((index_dir / "manifest.json").read_text("utf-8"))
        if manifest.get("embedder") != embedder_name or manifest.get("chroma_url"):
            return {}
        col = chroma_client(index_dir / "chroma").get_collection(COLLECTION)
        got = col.get(include=["embeddings", "metadatas"])
        return {m["key"]: list(e) for m, e in zip(got["metadatas"], got["embeddings"], strict=True)}
    except Exception:  # no usable previous index: embed everything
        return {}


def build_index(
    settings: Settings, embedder: Embedder | None = None, progress: Progress = _stderr
) -> dict[str, Any]:
    """Parse the corpus, chunk, embed, and write a fresh index; returns the manifest."""
    t0 = time.perf_counter()
    standards = load_corpus(settings.corpus_dir)
    chunks = make_chunks(standards, load_expansions(settings.corpus_dir, standards))
    bank = [x for x in load_bank(settings.corpus_dir, standards) if x.split == "train"]
    bank += stand_ins(chunks, bank)
    embedder = embedder or get_embedder(settings.embed_model)
    progress(
        f"[1/5] parsed {len(standards)} standard(s), {len(chunks)} clauses, "
        f"{len(bank)} bank questions"
    )

    keys = [_chunk_key(c, embedder.name) for c in chunks]
    previous = _previous_embeddings(settings.index_dir, embedder.name)
    todo = [i for i, k in enumerate(keys) if k not in previous]
    vectors: dict[int, list[float]] = {i: previous[k] for i, k in enumerate(keys) if k in previous}
    batch = 16
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        embs = embedder.embed_passages([chunks[i].passage for i in idx])
        vectors.update({i: e.tolist() for i, e in zip(idx, embs, strict=True)})
        progress(f"[2/5] embedded {min(start + batch, len(todo))}/{len(todo)} changed clauses")
    progress(f"[2/5] embeddings: {len(todo)} computed, {len(chunks) - len(todo)} reused")

    bank_bm25, bank_vectors, bank_keys = build_bank(
        bank, embedder, _previous_bank(settings.index_dir), progress
    )

    settings.index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".index-build-", dir=settings.index_dir.parent))
    try:
        ids = [c.clause_id for c in chunks]
        BankIndex.make(bank, bank_bm25, bank_vectors, ids).save(tmp / "bank", bank_keys)
        texts = [c.text for c in chunks]
        BM25Index.build(texts).save(tmp / "bm25")
        BM25Index.build(texts, segment.bigrams).save(tmp / "bm25_bigram")
        # a clause without expansions (a standard with no sidecar) is found here by its own
        # text, so that channel does not rank such a standard's clauses last
        BM25Index.build([c.expansion or c.text for c in chunks]).save(tmp / "bm25_expansion")
        progress("[4/5] BM25 indexes written (jieba words, character pairs, expansions, bank)")
        client = chroma_client(tmp / "chroma", settings.chroma_url)
        if settings.chroma_url:  # a shared server: replace the collection in place
            with contextlib.suppress(Exception):
                client.delete_collection(COLLECTION)
        col = client.create_collection(
            COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        col.add(
            ids=[c.clause_id for c in chunks],
            embeddings=[vectors[i] for i in range(len(chunks))],
            documents=[c.text for c in chunks],
            metadatas=[{"key": k, "source": c.source} for k, c in zip(keys, chunks, strict=True)],
        )
        del client, col
        progress(f"[5/5] Chroma collection written ({len(chunks)} vectors)")
        (tmp / "chunks.json").write_text(
            json.dumps([c.__dict__ for c in chunks], ensure_ascii=False, indent=0), "utf-8"
        )
        manifest = {
            "format_version": FORMAT_VERSION,
            "embedder": embedder.name,
            "embed_model": settings.embed_model,
            "dim": embedder.dim,
            "corpus": corpus_hashes(settings.corpus_dir),
            "segmenter": segmenter_hash(),
            "standards": [s.code for s in standards],
            "clause_count": len(chunks),
            "bank_questions": len(bank),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - t0, 3),
            "chroma_url": settings.chroma_url,
            "collection": COLLECTION,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        _swap_in(tmp, settings.index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"index ready in {settings.index_dir} ({manifest['build_seconds']} s)")
    return manifest


def _swap_in(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}-old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(index_dir: Path) -> dict[str, Any]:
    path = index_dir / "manifest.json"
    if not path.is_file():
        raise IndexMissingError(f"索引不存在 / no index at {index_dir}. {REBUILD_HINT}")
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise IndexStaleError(f"索引清单损坏 / unreadable {path} ({e}). {REBUILD_HINT}") from None


def check_manifest(manifest: dict[str, Any], settings: Settings) -> None:
    """Refuse an index built from another format, embedder or corpus."""
    problems = []
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"format {manifest.get('format_version')} ≠ {FORMAT_VERSION}")
    if manifest.get("embed_model") != settings.embed_model:
        problems.append(f"embedder {manifest.get('embed_model')!r} ≠ {settings.embed_model!r}")
    current = corpus_hashes(settings.corpus_dir)
    if manifest.get("corpus") != current:
        built = manifest.get("corpus", {})
        changed = sorted(n for n in set(built) | set(current) if built.get(n) != current.get(n))
        problems.append(f"corpus changed: {', '.join(changed)}")
    if manifest.get("segmenter") != segmenter_hash():
        problems.append(f"word-splitting data changed ({', '.join(SEGMENTER_FILES)})")
    if problems:
        raise IndexStaleError(
            f"索引已过期 / index in {settings.index_dir} is stale: {'; '.join(problems)}. "
            f"{REBUILD_HINT}"
        )


@dataclass
class LoadedIndex:
    manifest: dict[str, Any]
    standards: list[Standard]
    chunks: list[Chunk]
    bm25: BM25Index
    bm25_bigram: BM25Index
    bm25_expansion: BM25Index
    collection: Any
    embedder: Embedder
    bank: BankIndex


def load_index(settings: Settings, embedder: Embedder | None = None) -> LoadedIndex:
    manifest = read_manifest(settings.index_dir)
    check_manifest(manifest, settings)
    d = settings.index_dir
    try:
        chunks = [Chunk(**c) for c in json.loads((d / "chunks.json").read_text("utf-8"))]
        bm25 = BM25Index.load(d / "bm25")
        bm25_bigram = BM25Index.load(d / "bm25_bigram")
        bm25_expansion = BM25Index.load(d / "bm25_expansion")
        bank = BankIndex.load(d / "bank", [c.clause_id for c in chunks])
        client = chroma_client(d / "chroma", manifest.get("chroma_url") or settings.chroma_url)
        collection = client.get_collection(COLLECTION)
    except Exception as e:
        raise IndexStaleError(f"索引文件损坏 / index files unreadable ({e}). {REBUILD_HINT}") from e
    embedder = embedder or get_embedder(settings.embed_model)
    if embedder.name != manifest.get("embedder"):
        raise IndexStaleError(
            f"索引由 {manifest.get('embedder')} 构建，当前为 {embedder.name}. {REBUILD_HINT}"
        )
    return LoadedIndex(
        manifest,
        load_corpus(settings.corpus_dir),
        chunks,
        bm25,
        bm25_bigram,
        bm25_expansion,
        collection,
        embedder,
        bank,
    )
