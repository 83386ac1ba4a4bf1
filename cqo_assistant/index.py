"""The on-disk index: Chroma (dense vectors) + bm25s (jieba BM25) + ``manifest.json``.

Layout of ``index/``::

    CURRENT         the name of the complete index now in use (``v-<time>-<id>``), switched
                    with one ``os.replace`` — at every instant exactly one index is current
    v-<time>-<id>/  one complete index, never changed after it is built:
    .build-<id>/    a build in progress (removed by the next build if the build was killed)
    .build.lock     held by the build (``flock``): a second build is refused, not raced

and inside each ``v-*`` folder::

    manifest.json   format version, embedder name and dimension, sha256 of each corpus file,
                    clause count, build time, size and sha256 of every index file — loading
                    refuses any mismatch: the corpus → "stale", an index file → "damaged"
    chunks.json     the chunk texts (one per clause) in index order
    bm25/           bm25s index over jieba tokens, plus our token vocabulary
    bm25_bigram/    bm25s index over Chinese character pairs (robust to typos and word splits)
    bm25_expansion/ bm25s index over each clause's search-only expansion (English rendering and
                    the ways people ask, from ``corpus/<stem>.expansions.json``)
    bank/           the question bank's ``train`` questions (``corpus/<stem>.bank.jsonl``):
                    ``entries.json``, a bm25s index over their words, and ``vectors.npy``, their
                    query embeddings (3,000 × 384 float32 is 4.6 MB: a matrix product per
                    question, no ANN needed at this size)
    memory/         the training dialogs' follow-ups (``corpus/<stem>.dialogs.jsonl``):
                    ``entries.json`` and two bm25s indexes over their jieba words and character
                    pairs, told after their last question (``story/``) and alone (``own/``)
    chroma/         chromadb PersistentClient store, collection ``cqo_clauses``
    vectors.npy     the same clause vectors (float32, index order), read at query time

Why not llama-index's BM25Retriever: it ignores a custom tokenizer (bm25s underneath), so Chinese
scores 0. Why embeddings are always passed to Chroma: its default embedding function downloads a
model. Collection names must be ASCII.

A build goes into ``.build-<id>/``, is renamed to ``v-<time>-<id>/`` and made current by
replacing ``CURRENT``; a kill at any point leaves the previous index current and whole. The
previous version stays until the next build, so a reader that resolved ``CURRENT`` just before a
switch can still finish loading. Embeddings of chunks whose text did not change are taken from
the previous index (by sha256 of chunk text + embedder) when its files verify, so only changed
corpus files are re-embedded.

Why the clause vectors are also in ``vectors.npy``: importing chromadb costs about a second,
half of a command-line answer's cold start (issue 16 asks for ≤ 2 s), and with 91 clauses an
exact cosine over all of them (what the collection query with ``n_results`` = all returns) is
one small matrix product. So a local index answers from ``vectors.npy`` and opens the Chroma
store only when ``collection`` is asked for (tools, tests); with a Chroma server
(``CQO_CHROMA_URL``) the vectors live on the server and every query goes there.

Readers never write: Chroma's PersistentClient rewrites ``chroma.sqlite3`` and the HNSW files
whenever it opens a store, even to query it, which would break the checksums and a read-only
mount. So a reader opens a private copy of ``chroma/`` (under 1 MB) in the temp dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from . import segment
from .bank import BankEntry, FollowUp, bank_path, dialogs_path, load_bank, load_follow_ups
from .chunk import Chunk, make_chunks
from .embed import Embedder, get_embedder
from .errors import (
    REBUILD_HINT,
    CorpusGapError,
    CQOError,
    IndexBusyError,
    IndexDamagedError,
    IndexMissingError,
    IndexStaleError,
    IndexWriteError,
)
from .parse import Standard, corpus_files, expansions_path, load_corpus, load_expansions
from .settings import Settings

# 5: versions behind a CURRENT pointer, checksums of every file; 6: vectors.npy beside Chroma;
# 7: memory/ (the training dialogs' follow-ups)
FORMAT_VERSION = 7
COLLECTION = "cqo_clauses"
POINTER = "CURRENT"
LOCK = ".build.lock"
# what an index of format ≤ 4 kept directly in index/: removed once a format-5 index is current
OLD_LAYOUT = ("manifest.json", "chunks.json", "bm25", "bm25_bigram", "bm25_expansion", "bank")
# a new build of the same standard with fewer than this share of its clauses lost text
MIN_CLAUSE_SHARE = 0.95
# a reader whose version a build removed tries the new current one, this many times at most
MAX_RELOADS = 10
Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def corpus_hashes(corpus_dir: Path) -> dict[str, str]:
    """sha256 of every corpus file and of its sidecars (expansions, question bank, training
    dialogs) if any."""
    files = corpus_files(corpus_dir)
    sidecars = (expansions_path, bank_path, dialogs_path)
    files += [x for p in files for x in (f(p) for f in sidecars) if x.is_file()]
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


def words_and_pairs(text: str) -> list[str]:
    """jieba words and character pairs: the tokens the dialog memory is indexed by."""
    return segment.tokenize(text) + segment.bigrams(text)


@dataclass
class MemoryIndex:
    """The training dialogs' follow-ups by words (bm25s over ``words_and_pairs``), each told
    after the question before it (``story``) and alone (``own``). Words, not embeddings: on the
    training and dev dialogs the two chose the next clause equally well (5-fold CV), and words
    cost the build nothing (embedding 1,500 follow-ups twice would add half a minute)."""

    entries: list[FollowUp]
    story: BM25Index | None  # None when there are no training dialogs
    own: BM25Index | None

    @staticmethod
    def texts(last: str, question: str) -> tuple[str, str]:
        """(story, own) texts of a follow-up, as indexed."""
        return segment.normalize(f"{last} {question}"), segment.normalize(question)

    @classmethod
    def build(cls, entries: list[FollowUp]) -> MemoryIndex:
        if not entries:
            return cls([], None, None)
        story, own = zip(*(cls.texts(x.last, x.question) for x in entries), strict=True)
        return cls(
            entries,
            BM25Index.build(list(story), words_and_pairs),
            BM25Index.build(list(own), words_and_pairs),
        )

    def scores(self, last: str, question: str) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of a new follow-up against every entry: (as a story, alone)."""
        if self.story is None or self.own is None:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        story, own = self.texts(last, question)
        return self.story.scores(words_and_pairs(story)), self.own.scores(words_and_pairs(own))

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        rows = [x.__dict__ for x in self.entries]
        (path / "entries.json").write_text(json.dumps(rows, ensure_ascii=False), "utf-8")
        if self.story is not None and self.own is not None:
            self.story.save(path / "story")
            self.own.save(path / "own")

    @classmethod
    def load(cls, path: Path) -> MemoryIndex:
        rows = json.loads((path / "entries.json").read_text("utf-8"))
        entries = [FollowUp(**{**r, "clauses": tuple(r["clauses"])}) for r in rows]
        if not entries:
            return cls([], None, None)
        return cls(entries, BM25Index.load(path / "story"), BM25Index.load(path / "own"))


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


def _previous_bank(previous: Path | None, embedder_name: str) -> dict[str, np.ndarray]:
    """Bank vectors to reuse, keyed by (embedder, question) hash: those of the previous index
    (when its bank files verify) and of the machine's cache (``_bank_cache``), so a second index
    on the same machine (a test home, a rebuild into a new folder) does not embed 4,000
    questions again (~40 s)."""
    out: dict[str, np.ndarray] = {}
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = np.load(_bank_cache(embedder_name), allow_pickle=False)
        if hashlib.sha256(data["vectors"].tobytes()).hexdigest() == str(data["sha256"]):
            out.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
    if previous is not None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            rows = json.loads((previous / "bank" / "entries.json").read_text("utf-8"))
            vectors = np.load(previous / "bank" / "vectors.npy")
            out.update({r["key"]: v for r, v in zip(rows, vectors, strict=True)})
    return out


def _bank_cache(embedder_name: str) -> Path:
    """Embeddings are a pure function of (embedder, text), so a cache beside jieba's in the
    temp dir is safe to share and to lose; one file per embedder (one vector size)."""
    tag = hashlib.sha256(embedder_name.encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"cqo_bank_vectors.{tag}.npz"


def _save_bank_cache(embedder_name: str, keys: list[str], vectors: np.ndarray) -> None:
    path = _bank_cache(embedder_name)
    with contextlib.suppress(OSError):
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        sha = hashlib.sha256(vectors.tobytes()).hexdigest()
        np.savez(tmp, keys=np.array(keys), vectors=vectors, sha256=np.array(sha))
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
    if todo:  # the cache keeps what it had: other indexes (a test's small one) need theirs
        known = {k: v for k, v in previous.items() if len(v) == embedder.dim}
        known.update(zip(keys, vectors, strict=True))
        _save_bank_cache(embedder.name, list(known), np.array(list(known.values()), np.float32))
    bm25 = BM25Index.build([x.question for x in entries]) if entries else None
    return bm25, vectors, keys


def _previous_embeddings(previous: Path | None, embedder_name: str) -> dict[str, list[float]]:
    """Embeddings of the previous local index keyed by chunk hash, to reuse for unchanged
    chunks: read from its ``chunks.json`` and ``vectors.npy`` (chromadb is not opened)."""
    if previous is None:
        return {}
    try:
        manifest = json.loads((previous / "manifest.json").read_text("utf-8"))
        if manifest.get("embedder") != embedder_name or manifest.get("chroma_url"):
            return {}
        rows = json.loads((previous / "chunks.json").read_text("utf-8"))
        vectors = np.load(previous / "vectors.npy")
        if len(vectors) != len(rows):
            return {}
        return {
            _chunk_key(Chunk(**r), embedder_name): v.tolist()
            for r, v in zip(rows, vectors, strict=True)
        }
    except Exception:  # no usable previous index: embed everything
        return {}


def _reusable(index_dir: Path) -> tuple[Path | None, Path | None]:
    """The current index folder's parts whose files verify, for a rebuild to reuse: (folder for
    the clause embeddings, folder for the bank vectors) — None for a part that is damaged."""
    try:
        root = current_dir(index_dir)
        manifest = read_manifest(index_dir, root)
    except CQOError:
        return None, None
    bad = verify_files(root, manifest)
    clauses_ok = not any(x.startswith(("chunks.json ", "vectors.npy ")) for x in bad)
    bank_ok = not any(x.startswith("bank/") for x in bad)
    return (root if clauses_ok else None), (root if bank_ok else None)


def build_index(
    settings: Settings,
    embedder: Embedder | None = None,
    progress: Progress = _stderr,
    allow_gaps: bool = False,
) -> dict[str, Any]:
    """Parse the corpus, chunk, embed, and make a fresh index current; returns the manifest.

    ``allow_gaps`` indexes a standard whose text skips a chapter, clause or list item, or lost
    many clauses since the last build — loudly, and recorded in the manifest."""
    t0 = time.perf_counter()
    standards = load_corpus(settings.corpus_dir, allow_gaps=allow_gaps)  # before any write
    with _build_lock(settings.index_dir):
        _remove_leftovers(settings.index_dir)
        return _build(settings, standards, embedder, progress, allow_gaps, t0)


def _build(
    settings: Settings,
    standards: list[Standard],
    embedder: Embedder | None,
    progress: Progress,
    allow_gaps: bool,
    t0: float,
) -> dict[str, Any]:
    gaps = [f"{s.source}: {g}" for s in standards for g in s.gaps]
    lost = _lost_clauses(settings.index_dir, standards)
    if lost and not allow_gaps:
        raise CorpusGapError(lost)
    gaps += lost
    for g in gaps:
        progress(f"WARNING 索引包含不完整的标准 / indexing a standard with gaps: {g}")
    chunks = make_chunks(standards, load_expansions(settings.corpus_dir, standards))
    bank = [x for x in load_bank(settings.corpus_dir, standards) if x.split == "train"]
    bank += stand_ins(chunks, bank)
    embedder = embedder or get_embedder(settings.embed_model)
    progress(
        f"[1/5] parsed {len(standards)} standard(s), {len(chunks)} clauses, "
        f"{len(bank)} bank questions"
    )

    old_clauses, old_bank = _reusable(settings.index_dir)
    keys = [_chunk_key(c, embedder.name) for c in chunks]
    previous = _previous_embeddings(old_clauses, embedder.name)
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
        bank, embedder, _previous_bank(old_bank, embedder.name), progress
    )

    tmp = settings.index_dir / f".build-{uuid.uuid4().hex[:12]}"
    try:
        tmp.mkdir()
        ids = [c.clause_id for c in chunks]
        BankIndex.make(bank, bank_bm25, bank_vectors, ids).save(tmp / "bank", bank_keys)
        MemoryIndex.build(load_follow_ups(settings.corpus_dir, standards)).save(tmp / "memory")
        texts = [c.text for c in chunks]
        BM25Index.build(texts).save(tmp / "bm25")
        BM25Index.build(texts, segment.bigrams).save(tmp / "bm25_bigram")
        # a clause without expansions (a standard with no sidecar) is found here by its own
        # text, so that channel does not rank such a standard's clauses last
        BM25Index.build([c.expansion or c.text for c in chunks]).save(tmp / "bm25_expansion")
        progress(
            "[4/5] BM25 indexes written (jieba words, character pairs, expansions, bank, dialogs)"
        )
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
        if not settings.chroma_url:
            np.save(tmp / "vectors.npy", np.array([vectors[i] for i in range(len(chunks))], "f4"))
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
            "clauses_per_standard": {
                s.code: sum(c.source == s.source for c in chunks) for s in standards
            },
            "clause_count": len(chunks),
            "bank_questions": len(bank),
            "accepted_gaps": gaps,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - t0, 3),
            "chroma_url": settings.chroma_url,
            "collection": COLLECTION,
            "files": file_table(tmp),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        _checkpoint("written")
        _switch_to(tmp, settings.index_dir)
    except OSError as e:
        free = shutil.disk_usage(settings.index_dir).free / 1e6  # before the cleanup frees some
        shutil.rmtree(tmp, ignore_errors=True)
        raise IndexWriteError(
            f"索引写入失败 / could not write the index in {settings.index_dir} "
            f"({e.strerror or e}; {free:.1f} MB free there); 原索引未改动 / the previous index "
            "is unchanged. 请腾出磁盘空间或检查写权限后重试 / free disk space or fix "
            "permissions, then run `cqo index` again"
        ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"index ready in {settings.index_dir} ({manifest['build_seconds']} s)")
    return manifest


def _checkpoint(name: str) -> None:
    """Fault-injection hook: ``CQO_BUILD_PAUSE=<name>`` stops a build here (a test kills it)."""
    if os.environ.get("CQO_BUILD_PAUSE") == name:
        _stderr(f"paused at {name}")
        time.sleep(3600)


def _lost_clauses(index_dir: Path, standards: list[Standard]) -> list[str]:
    """A standard the current index has, that now parses to far fewer clauses (its last
    chapter lost, which no numbering gap shows)."""
    try:
        before = read_manifest(index_dir).get("clauses_per_standard", {})
    except CQOError:
        return []
    out = []
    for s in standards:
        n, was = len(s.clauses), before.get(s.code, 0)
        if n < was * MIN_CLAUSE_SHARE:
            out.append(
                f"{s.source}: 条款数从 {was} 降到 {n} / {was} clauses in the current index, "
                f"{n} in the new text"
            )
    return out


@contextlib.contextmanager
def _build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index folder; the second one is refused with a clear message."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        f = open(index_dir / LOCK, "a+", encoding="utf-8")  # noqa: SIM115
    except OSError as e:
        raise IndexWriteError(
            f"无法写入索引目录 / cannot write the index folder {index_dir} ({e.strerror or e}); "
            "检查路径和权限 / check the path and its permissions"
        ) from e
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "?"
            raise IndexBusyError(
                f"另一个 `cqo index` 正在构建 {index_dir}（进程 {pid}），请等它结束后再试 / "
                f"another build (pid {pid}) is writing {index_dir}; wait for it to finish and retry"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield


def _remove_leftovers(index_dir: Path) -> None:
    """Under the build lock: folders of killed builds, versions older than the current one,
    and the swap folders the format-4 layout left beside ``index/``."""
    current = current_dir(index_dir, strict=False).name
    for p in index_dir.iterdir():
        if p.is_dir() and p.name.startswith((".build-", "v-")) and p.name != current:
            shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob(f".{POINTER}.*"):  # a pointer written but never switched
        p.unlink(missing_ok=True)
    for pattern in (".index-build-*", f".{index_dir.name}-old-*"):
        for p in index_dir.parent.glob(pattern):
            shutil.rmtree(p, ignore_errors=True)


def _switch_to(built: Path, index_dir: Path) -> None:
    """Make ``built`` the current index in one atomic step: rename it to its version name, then
    replace ``CURRENT``. The version it replaces stays until the next build (a reader may still
    be loading it); the files of a format-4 index are removed."""
    version = index_dir / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{built.name[-12:]}"
    built.rename(version)
    _checkpoint("renamed")
    tmp = index_dir / f".{POINTER}.{built.name[-12:]}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(version.name)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / POINTER)
    with contextlib.suppress(OSError):
        fd = os.open(index_dir, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    _checkpoint("switched")
    for name in (*OLD_LAYOUT, "chroma"):  # the new index is current: a failure here is no fault
        p = index_dir / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


def current_dir(index_dir: Path, strict: bool = True) -> Path:
    """The folder of the index now in use. An index of format ≤ 4 (no ``CURRENT``) is
    ``index_dir`` itself, where its manifest then reports the old format."""
    try:
        name = (index_dir / POINTER).read_text("utf-8").strip()
    except FileNotFoundError:
        return index_dir
    except OSError as e:
        if not strict:
            return index_dir
        raise IndexDamagedError(
            f"索引已损坏 / index damaged: cannot read {index_dir / POINTER} ({e.strerror or e}). "
            f"{REBUILD_HINT}"
        ) from None
    if not name.startswith("v-") or "/" in name or "\x00" in name:
        if not strict:
            return index_dir
        raise IndexDamagedError(
            f"索引已损坏 / index damaged: {index_dir / POINTER} holds {name[:40]!r}. {REBUILD_HINT}"
        )
    return index_dir / name


def file_table(root: Path) -> dict[str, list[int | str]]:
    """[size, sha256] of every file under ``root`` except the manifest, by relative path."""
    return {
        p.relative_to(root).as_posix(): [
            p.stat().st_size,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        ]
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def verify_files(root: Path, manifest: dict[str, Any], hashes: bool = True) -> list[str]:
    """The index files that are missing, unreadable or not what the build wrote (sizes always,
    sha256 too unless ``hashes=False``); empty when all are whole."""
    bad = []
    for rel, (size, sha) in manifest.get("files", {}).items():
        p = root / rel
        try:
            if p.stat().st_size != size:
                bad.append(f"{rel} (size)")
            elif hashes and hashlib.sha256(p.read_bytes()).hexdigest() != sha:
                bad.append(f"{rel} (checksum)")
        except OSError as e:
            bad.append(f"{rel} ({e.strerror or 'unreadable'})")
    return bad


def read_manifest(index_dir: Path, root: Path | None = None) -> dict[str, Any]:
    """The manifest of the current index (or of the version folder ``root``)."""
    root = root or current_dir(index_dir)
    path = root / "manifest.json"
    if not path.is_file():
        if root != index_dir:
            raise IndexDamagedError(
                f"索引已损坏 / index damaged: {index_dir / POINTER} names {root.name}, which has "
                f"no manifest. {REBUILD_HINT}"
            )
        raise IndexMissingError(f"索引不存在 / no index at {index_dir}. {REBUILD_HINT}")
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise IndexDamagedError(
            f"索引清单损坏 / index damaged: unreadable {path} ({e}). {REBUILD_HINT}"
        ) from None


def check_index(
    settings: Settings, root: Path | None = None, hashes: bool = True
) -> dict[str, Any]:
    """The manifest of the current index (or of the version folder ``root``), if it is current
    (else IndexStaleError) and whole (else IndexDamagedError)."""
    root = root or current_dir(settings.index_dir)
    manifest = read_manifest(settings.index_dir, root)
    check_manifest(manifest, settings)
    bad = verify_files(root, manifest, hashes)
    if bad:
        raise IndexDamagedError(
            f"索引已损坏 / index damaged in {settings.index_dir}: {', '.join(bad[:4])}"
            f"{' …' if len(bad) > 4 else ''}. {REBUILD_HINT}"
        )
    return manifest


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
    vectors: np.ndarray | None  # unit clause vectors in index order; None: on a Chroma server
    embedder: Embedder
    bank: BankIndex
    memory: MemoryIndex
    root: Path  # the version folder it was loaded from
    _collection: Any = None
    _chroma: Path | None = None  # a local index: the private copy of its Chroma store

    @property
    def collection(self) -> Any:
        """The Chroma collection (a local index's private copy, opened on first use: the copy is
        made at load, so it outlives a later build that removes this version)."""
        if self._collection is None:
            assert self._chroma is not None
            self._collection = chroma_client(self._chroma).get_collection(COLLECTION)
        return self._collection


def load_index(settings: Settings, embedder: Embedder | None = None) -> LoadedIndex:
    """Load the current index, verified. A build removes the version before the current one,
    so a reader slower than a build can find its version gone: while ``CURRENT`` keeps moving,
    load the version it names now; a failure with ``CURRENT`` unchanged is real damage."""
    root = current_dir(settings.index_dir)
    for _ in range(MAX_RELOADS):
        try:
            return _load(settings, embedder, root)
        except (IndexDamagedError, IndexMissingError):
            now = current_dir(settings.index_dir)
            if now == root:
                raise
            root = now
    return _load(settings, embedder, root)


def _private_copy(chroma: Path, into: Path) -> Path:
    dst = into / "chroma"
    shutil.copytree(chroma, dst)
    return dst


def _load(settings: Settings, embedder: Embedder | None, d: Path) -> LoadedIndex:
    manifest = check_index(settings, d)
    url = manifest.get("chroma_url") or settings.chroma_url
    private = None if url else Path(tempfile.mkdtemp(prefix="cqo-chroma-"))
    try:
        chunks = [Chunk(**c) for c in json.loads((d / "chunks.json").read_text("utf-8"))]
        bm25 = BM25Index.load(d / "bm25")
        bm25_bigram = BM25Index.load(d / "bm25_bigram")
        bm25_expansion = BM25Index.load(d / "bm25_expansion")
        bank = BankIndex.load(d / "bank", [c.clause_id for c in chunks])
        memory = MemoryIndex.load(d / "memory")
        collection, vectors, store = None, None, None
        if private is None:
            collection = chroma_client(None, url).get_collection(COLLECTION)
        else:
            store = _private_copy(d / "chroma", private)  # a few ms; chromadb is not imported
            vectors = np.load(d / "vectors.npy")
            if vectors.shape != (len(chunks), manifest.get("dim")):
                raise ValueError(f"vectors.npy is {vectors.shape}, not {len(chunks)} clauses")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    except Exception as e:
        if private:
            shutil.rmtree(private, ignore_errors=True)
        raise IndexDamagedError(
            f"索引文件损坏 / index files unreadable ({e}). {REBUILD_HINT}"
        ) from e
    embedder = embedder or get_embedder(settings.embed_model)
    if embedder.name != manifest.get("embedder"):
        if private:
            shutil.rmtree(private, ignore_errors=True)
        raise IndexStaleError(
            f"索引由 {manifest.get('embedder')} 构建，当前为 {embedder.name}. {REBUILD_HINT}"
        )
    loaded = LoadedIndex(
        manifest,
        load_corpus(settings.corpus_dir, allow_gaps=bool(manifest.get("accepted_gaps"))),
        chunks,
        bm25,
        bm25_bigram,
        bm25_expansion,
        vectors,
        embedder,
        bank,
        memory,
        d,
        collection,
        store,
    )
    if private:
        weakref.finalize(loaded, shutil.rmtree, private, True)
    return loaded
