"""Hybrid retrieval: jieba-BM25 (bm25s) and dense (Chroma), fused by weighted reciprocal rank.

Why our own fusion and not llama-index's ``QueryFusionRetriever``: it fuses with equal weights
(``reciprocal_rerank``) or min-max of raw scores, and the measured baseline
(shared/notes/retrieval-baseline.md) shows equal-weight RRF makes BM25 *worse* on this standard.
Here BM25 carries most of the weight, dense gets more for questions with little Chinese in them
(English), and the weights are tuned on the gold dev split (``cqo eval``).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import segment
from .index import STAND_IN, LoadedIndex
from .parse import Clause, is_ancestor, related
from .query import Query, find_refs, is_bare, missing_refs, split_focus, strip_meta, weighted
from .segment import DATA_DIR

_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[a-z][a-z0-9-]+")
_DEFINITION_Q = re.compile(
    r"什么是|是什么|是指什么|指的是|啥是|是啥|定义|含义|概念|what is|what's|what does .* mean|defin"
)


@dataclass(frozen=True)
class Hit:
    clause_id: str
    score: float  # fused score (higher is better)
    text: str  # verbatim clause text
    path: str  # heading path "5 任职要求 > 5.1 任职资格 > e)"
    bm25: float = 0.0
    dense: float = 0.0


@dataclass(frozen=True)
class FusionConfig:
    rrf_k: int = 10
    w_bm25: float = 1.0
    w_dense: float = 0.35
    w_dense_foreign: float = 1.0  # weight of dense when the question is mostly not Chinese
    w_bigram: float = 0.0  # character-pair BM25
    w_expansion: float = 0.0  # BM25 over the clauses' search-only expansions
    w_bank_words: float = 0.0  # BM25 over the question bank, best question per clause
    w_bank_dense: float = 0.0  # cosine to the bank's questions, best question per clause

    @classmethod
    def load(cls) -> FusionConfig:
        """Weights calibrated on the gold dev split (``cqo eval --calibrate``), else defaults."""
        data = load_calibration().get("fusion", {})
        return cls(**{k: v for k, v in data.items() if k in cls.__annotations__})


def load_calibration() -> dict:
    """The committed calibration, or the file ``CQO_CALIBRATION`` names (to try another one, and
    for the test that weakens it to show the quality floors catch it)."""
    path = os.environ.get("CQO_CALIBRATION") or DATA_DIR / "calibration.json"
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


@dataclass(frozen=True)
class QuerySignals:
    """What the retrievers saw; the answer step decides from these whether, and how surely, the
    standard answers the question."""

    content_coverage: float  # share of specific query tokens that exist in the standard
    bm25_top: float  # best BM25 score over the clauses' text or their expansions
    dense_top: float
    agree: bool  # BM25's and dense's best clause are the same or parent/child
    # what the question asks about (or names in Latin letters: IATF, Minitab) that the standard
    # never uses: "有什么补贴政策" is not answered by clauses that share its other words
    unknown: tuple[str, ...] = ()
    foreign: bool = False  # mostly not Chinese (English): its cosines to Chinese text run lower
    bank_pos: float = 0.0  # cosine to the nearest answerable bank question
    bank_neg: float = 0.0  # cosine to the nearest unanswerable bank question
    bank_neg_share: float = 0.0  # similarity-weighted share of unanswerable among the nearest
    bank_agree: bool = False  # the nearest answerable bank question's clause is the top hit's,
    # its parent or its child
    refs: bool = False  # the question names a clause number
    missing: tuple[str, ...] = ()  # clause numbers it names that the standard does not have
    bare_ref: bool = False  # … and nothing else
    margin: float = 0.0  # (best − second) / best fused score
    content: bool = True  # the question sentence has a word that tells clauses apart
    bank: bool = False  # the top hit's standard has a question bank (else bank_* mean nothing)


@dataclass(frozen=True)
class Scores:
    """Every channel's scores for one query, in index order (``bank_entry``: per bank question)."""

    bm25: np.ndarray
    dense: np.ndarray
    bigram: np.ndarray
    expansion: np.ndarray
    bank_words: np.ndarray
    bank_dense: np.ndarray
    bank_entry: np.ndarray  # cosine of the query to each bank question


_TITLE_CUE = re.compile(
    r"包括|包含|哪些|哪几|主要|讲|内容|方面|几块|几部分|几个部分|概括|总结|涵盖|介绍|有什么|有啥|"
    r"是什么|要求|规定|what|cover|about|include"
)
_NEIGHBOURS = 10  # bank questions that vote on answerability


@dataclass
class Retriever:
    index: LoadedIndex
    fusion: FusionConfig = field(default_factory=FusionConfig.load)

    def __post_init__(self) -> None:
        self.ids = [c.clause_id for c in self.index.chunks]
        self.clauses: dict[str, Clause] = {c.id: c for s in self.index.standards for c in s.clauses}
        self._pos = {cid: i for i, cid in enumerate(self.ids)}
        # local numbers ("5.1 e)") that name one clause; with several standards a number two of
        # them share is not resolved (ask with the standard's code, or by the words)
        numbers = Counter(c.number for c in self.clauses.values())
        self._numbers = {c.number: c.id for c in self.clauses.values() if numbers[c.number] == 1}
        self._all_numbers = frozenset(numbers)
        self.generic = self._generic_terms()  # words too common to tell clauses apart
        self.generic_pairs = self._generic_terms(segment.bigrams)
        self.vocab = set(self.index.bm25.vocab) | set(self.index.bm25_expansion.vocab)
        # English words are judged by the vocabulary only when clauses have English renderings
        # (expansions; the expansion channel's vocabulary also holds clause text, "gb" and all)
        self.english = any(c.expansion for c in self.index.chunks)
        corpus = "".join(segment.normalize(c.text) for c in self.index.chunks)
        self._bigrams = frozenset(corpus[i : i + 2] for i in range(len(corpus) - 1))
        self._chars = frozenset(corpus)
        self.analyse = lru_cache(maxsize=1024)(self._analyse)  # every channel reads one Query
        self._rank = lru_cache(maxsize=256)(self._rank_uncached)
        # a follow-up re-ranks the questions before it: their embeddings are kept
        self._embed_text = lru_cache(maxsize=256)(
            lambda text: self.index.embedder.embed_queries([text])[0]
        )
        self._sounds: dict[tuple[str, ...], list[str]] = {}  # pinyin → the standard's words
        for w in self.index.bm25.vocab:
            if 2 <= len(w) <= 4 and _CJK.fullmatch(w[0]) and _CJK.fullmatch(w[-1]):
                for key in segment.pinyin_keys(w):
                    self._sounds.setdefault(key, []).append(w)
        bank = [e for e in self.index.bank.entries if e.style != STAND_IN]
        self._banked = {self.clauses[c].standard for e in bank for c in e.clauses}
        # titled clauses, longest title first (a chapter question names its heading)
        # (not a term's entry in 术语和定义: its title is the term, named in most questions)
        self._titles = sorted(
            (
                (segment.normalize(c.title), c.id)
                for c in self.clauses.values()
                if len(c.title) > 1 and not self._is_term(c)
            ),
            key=lambda t: -len(t[0]),
        )

    def _generic_terms(
        self, split: Callable[[str], list[str]] = segment.tokenize
    ) -> frozenset[str]:
        """Tokens in more than a fifth of all clauses (首席质量官, 质量, 企业 …)."""
        df: dict[str, int] = {}
        for c in self.index.chunks:
            for t in set(split(c.text)) | set(split(c.expansion)):
                df[t] = df.get(t, 0) + 1
        n = len(self.index.chunks)
        return frozenset(t for t, v in df.items() if v > n / 5)

    def _informs(
        self, terms: Sequence[str], vocab: dict[str, int], generic: frozenset[str]
    ) -> bool:
        """Does a BM25 channel match anything specific? When the question meets it only through
        words most clauses share (an English question meets the Chinese text only through
        CQO → 首席质量官), its ranking is just clause length and must not vote."""
        return any(t in vocab and t not in generic for t in terms)

    def _known(self, token: str) -> bool:
        """A word of the standard (or of its expansions), a near form of one, or a glossary key."""
        return (
            token in self.vocab
            or segment.stem(token) in self.vocab
            or (not token.isascii() and self._near(token))
            or _is_synonym_key(token)
            or _triggers(token)
        )

    def _near(self, token: str) -> bool:
        """A word the standard writes differently: it shares a character pair with the text
        (敏感信息 ~ 敏感数据), so it is in the standard's vocabulary neighbourhood."""
        if len(token) == 1:  # a single character: is it used in the standard at all?
            return token in self._chars
        return any(token[i : i + 2] in self._bigrams for i in range(len(token) - 1))

    # --- the question, analysed once ---------------------------------------------------------
    def _expand(self, text: str) -> str:
        """Text with the standard's terms for its everyday / English words and for words it
        mistypes with a same-sounding character (规化 → 规划)."""
        fixed = segment.homophones(text, self._sounds, self._bigrams)
        return segment.expand(text + (" " + " ".join(fixed) if fixed else ""))

    def _analyse(self, question: str) -> Query:
        text = segment.normalize(question)
        refs, rest = find_refs(text, self._numbers)
        refs = [self._numbers[r] for r in refs]
        focus, story = split_focus(strip_meta(rest) if refs else text)
        focus, story = strip_meta(focus), strip_meta(story)
        content = self._content_words(focus)
        if story and not content:  # "按标准这个说法站得住吗？": the story asks
            focus, story = strip_meta(rest if refs else text), ""
            content = self._content_words(focus)
        f_exp, s_exp = self._expand(focus), self._expand(story) if story else ""
        return Query(
            text=text,
            focus=focus,
            story=story,
            expanded=f"{f_exp} {s_exp}".strip(),
            words=weighted(segment.tokenize(f_exp), segment.tokenize(s_exp)),
            pairs=weighted(segment.bigrams(f_exp), segment.bigrams(s_exp)),
            plain=tuple(segment.tokenize(focus)),
            content=tuple(content),
            refs=tuple(refs),
            missing=() if refs else tuple(missing_refs(text, self._all_numbers)),
            bare_ref=bool(refs) and is_bare(rest),
            foreign=is_foreign(question),
        )

    def _content_words(self, text: str) -> list[str]:
        """Words of ``text`` that tell clauses apart: the standard's (or its glossary's), not
        shared by most clauses, not a word for the kind of answer wanted (方面, 内容 …)."""
        return [
            t
            for t in segment.tokenize(segment.expand(text))
            if t not in self.generic and t not in segment.LIGHT_NOUNS and self._known(t)
        ]

    def query_text(self, question: str) -> str:
        return self.analyse(question).expanded

    def query_tokens(self, question: str) -> list[str]:
        return list(dict.fromkeys(self.analyse(question).words))

    # --- channels ----------------------------------------------------------------------------
    def dense_scores(self, question: str | Query) -> np.ndarray:
        """Cosine similarity of the question to every clause, in index order. The question is
        embedded with its glossary terms and typo repairs added: measured on dev, dense hit@1
        0.76 → 0.84; on test 0.74 → 0.77."""
        return self._dense(self._embed(self._q(question)))[0]

    def _q(self, question: str | Query) -> Query:
        return self.analyse(question) if isinstance(question, str) else question

    def _embed(self, q: Query) -> np.ndarray:
        return self._embed_text(q.expanded or q.text)

    def _dense(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cosine to every clause, cosine to every bank question)."""
        vec = vec.astype(np.float32)
        # einsum, not `@`: a BLAS product wakes OpenBLAS threads that then spin against the
        # embedder's OpenMP threads on the same cores (measured: encode 13 → 54 ms a query)
        if self.index.vectors is not None:  # exact cosine over all clauses (index.py: why)
            unit = vec / (np.linalg.norm(vec) + 1e-12)
            out = np.einsum("ij,j->i", self.index.vectors, unit)
        else:  # a Chroma server holds the vectors
            res = self.index.collection.query(
                query_embeddings=[vec.tolist()], n_results=len(self.ids), include=["distances"]
            )
            out = np.zeros(len(self.ids), dtype=np.float32)
            for cid, dist in zip(res["ids"][0], res["distances"][0], strict=True):
                out[self._pos[cid]] = 1.0 - float(dist)
        return out, np.einsum("ij,j->i", self.index.bank.vectors, vec)

    def bank_similarity(self, text: str) -> np.ndarray:
        """Cosine of ``text`` to every bank question, embedded as the dense channel embeds it
        (after ``rank(text)`` the embedding is cached: one matrix product)."""
        vec = self._embed(self.analyse(text)).astype(np.float32)
        return np.einsum("ij,j->i", self.index.bank.vectors, vec / (np.linalg.norm(vec) + 1e-12))

    def scores(self, question: str | Query, method: str = "hybrid") -> Scores:
        q = self._q(question)
        n = len(self.ids)
        zero = np.zeros(n, dtype=np.float32)
        bank = self.index.bank
        bm = self.index.bm25.scores(list(q.words))
        ex = self.index.bm25_expansion.scores(list(q.words))
        if method == "bm25":
            return Scores(bm, zero, zero, ex, zero, zero, np.zeros(len(bank.entries), np.float32))
        de, entry = self._dense(self._embed(q))
        bg = self.index.bm25_bigram.scores(list(q.pairs))
        bw = bank.per_clause(bank.bm25.scores(list(q.words)), n) if bank.bm25 else zero
        bd = bank.per_clause(np.maximum(entry, 0.0), n)
        return Scores(bm, de, bg, ex, bw, bd, entry)

    # --- fusion --------------------------------------------------------------------------
    def _rrf(self, scores: np.ndarray, weight: float, only_positive: bool) -> np.ndarray:
        order = np.argsort(-scores, kind="stable")
        ranks = np.empty(len(scores), dtype=np.float32)
        ranks[order] = np.arange(1, len(scores) + 1)
        contrib = weight / (self.fusion.rrf_k + ranks)
        if only_positive:
            contrib[scores <= 0] = 0.0
        return contrib

    def fuse(self, q: Query, sc: Scores) -> np.ndarray:
        """Weighted RRF of the word, character-pair, expansion and bank BM25 channels and the
        clause and bank dense channels; dense weighs differently for a foreign question. A word
        channel that meets the question only through words most clauses share does not vote."""
        f = self.fusion
        fused = self._rrf(sc.dense, f.w_dense_foreign if q.foreign else f.w_dense, False)
        words_inform = self._informs(q.words, self.index.bm25.vocab, self.generic)
        if words_inform:
            fused += self._rrf(sc.bm25, f.w_bm25, True)
        if f.w_bigram and self._informs(q.pairs, self.index.bm25_bigram.vocab, self.generic_pairs):
            fused += self._rrf(sc.bigram, f.w_bigram, True)
        if f.w_expansion and self._informs(q.words, self.index.bm25_expansion.vocab, self.generic):
            fused += self._rrf(sc.expansion, f.w_expansion, True)
        if f.w_bank_words and sc.bank_words.any():
            fused += self._rrf(sc.bank_words, f.w_bank_words, True)
        if f.w_bank_dense and sc.bank_dense.any():
            fused += self._rrf(sc.bank_dense, f.w_bank_dense, True)
        return fused

    def order(self, q: Query, fused: np.ndarray) -> list[int]:
        """Clause positions best first: fused score, then the structure rules (a heading below
        its own best clause, a named chapter or section first, a definition first, a clause
        number the question names first)."""
        order = [int(i) for i in np.argsort(-fused, kind="stable")]
        named = self._titled(q)
        order = self._specific_first(order, keep=set(q.refs) | set(named))
        order = self._first(named, order)
        order = self._definition_first(q, order)
        return self._first(list(q.refs), order)

    def rank(
        self,
        question: str | Query,
        method: str = "hybrid",
        also: str | None = None,
        also_weight: float = 0.0,
    ) -> tuple[list[Hit], QuerySignals]:
        """All clauses ranked best first by ``method`` (hybrid | bm25 | dense), and the signals
        the answer step judges. ``also``: a second text whose fused scores are added at
        ``also_weight`` before the structure rules order the clauses (a follow-up's own words
        beside its story). Cached per (question, method, also, weight, fusion weights): a
        follow-up re-ranks the questions before it. The lists returned are shared: do not
        change them."""
        return self._rank(self._q(question), method, also, also_weight, self.fusion)

    def _rank_uncached(
        self, q: Query, method: str, also: str | None, also_weight: float, _fusion: FusionConfig
    ) -> tuple[list[Hit], QuerySignals]:
        sc = self.scores(q, method)
        fused = {"bm25": sc.bm25, "dense": sc.dense}.get(method)
        if fused is None:
            fused = self.fuse(q, sc)
            if also is not None:
                extra = self._q(also)
                fused = fused + also_weight * self.fuse(extra, self.scores(extra, method))
            order = self.order(q, fused)
        else:
            order = self._specific_first([int(i) for i in np.argsort(-fused, kind="stable")])
            order = self._first(list(q.refs), order)
        hits = [
            Hit(
                self.ids[i],
                float(fused[i]),
                self.clauses[self.ids[i]].quote_text,
                self.clauses[self.ids[i]].path_str,
                float(sc.bm25[i]),
                float(sc.dense[i]),
            )
            for i in order
        ]
        return hits, self._signals(q, sc, fused, order)

    def _first(self, ids: list[str], order: list[int]) -> list[int]:
        front = [self._pos[c] for c in ids if c in self._pos]
        return front + [i for i in order if i not in front]

    def _titled(self, q: Query) -> list[str]:
        """A chapter or section named by its title with a question about its scope ("工作保障
        包括哪些方面", "任职资格有哪些") is answered with that heading: the longest title named."""
        focus = q.focus
        if not _TITLE_CUE.search(focus):
            return []
        for title, cid in self._titles:
            if title in focus:
                return [cid]
        return []

    def _specific_first(
        self, order: list[int], window: int = 5, keep: set[str] | frozenset[str] = frozenset()
    ) -> list[int]:
        """A heading with no text of its own (chapter 8, 7.1) never outranks its own best
        clause: it moves just below the first of its descendants within the top ``window``
        (unless the question names it: ``keep``)."""
        out = list(order)
        for i in order[:window]:
            c = self.clauses[self.ids[i]]
            if c.text or c.id in keep:
                continue
            pos = out.index(i)
            below = [j for j, k in enumerate(out[:window]) if j > pos and self._under(k, c.id)]
            if below:
                out.insert(below[0], out.pop(pos))
        return out

    def _is_term(self, c: Clause) -> bool:
        return c.parent is not None and "术语" in self.clauses[c.parent].title

    def _definition_first(self, q: Query, order: list[int]) -> list[int]:
        """ "什么是首席质量官" / "What is a chief quality officer?": the term's entry in the
        terms-and-definitions chapter (GB/T 1.1 chapter 3) goes first."""
        text = segment.expand(q.focus)
        if not _DEFINITION_Q.search(text):
            return order
        terms = [
            i
            for i in order[:10]
            if (c := self.clauses[self.ids[i]]).title and self._is_term(c) and c.title in text
        ]
        return terms[:1] + [i for i in order if i not in terms[:1]]

    def _under(self, k: int, ancestor: str) -> bool:
        return is_ancestor(ancestor, self.ids[k], self.clauses)

    def related(self, a: str, b: str) -> bool:
        """Same clause, or one is an ancestor of the other."""
        return related(a, b, self.clauses)

    def _signals(self, q: Query, sc: Scores, fused: np.ndarray, order: list[int]) -> QuerySignals:
        tokens = set(q.words)
        plain = list(q.plain)
        fired = bool(tokens - set(q.plain) - set(segment.tokenize(q.story)))  # glossary matched
        # In a Chinese question every specific word counts; in an English one only the Chinese
        # words do, unless clauses have English renderings (else English words are judged
        # through the glossary, i.e. ``fired``).
        chinese = any(not t.isascii() for t in plain) or self.english
        specific = [t for t in plain if t not in self.generic and (chinese or not t.isascii())]
        vocab = self.vocab
        covered = [
            t
            for t in specific
            if t in vocab
            or (not t.isascii() and self._near(t))
            or (fired and _triggers(t))
            or (t.isascii() and _is_synonym_key(t))
        ]
        # words the standard does not know (a single character is a piece of a word jieba did
        # not know: a typo, a name); only if there are any, which of them are asked about
        strange = {t for t in plain if len(t) > 1 and not t.isascii() and not self._known(t)}
        unknown = [
            t
            for t in (segment.asked_about(q.focus) if strange else [])
            if t in strange and t not in self.generic and t not in segment.LIGHT_NOUNS
        ]
        if _CJK.search(q.focus):  # a name in Latin letters in a Chinese question
            unknown += [w for w in _LATIN.findall(q.focus) if not self._known(w)]
        if specific:
            coverage = len(covered) / len(specific)
        else:
            coverage = 1.0 if fired or (plain and all(t in vocab for t in plain)) else 0.0
        if q.bare_ref:
            coverage = 1.0
        bm, de = sc.bm25, sc.dense
        b_best, d_best = int(np.argmax(bm)), int(np.argmax(de))
        agree = bool(bm.max() > 0) and self.related(self.ids[b_best], self.ids[d_best])
        # the best word match in the standard's text or in its expansions (English questions
        # meet only the English renderings)
        lexical = max(float(bm.max(initial=0.0)), float(sc.expansion.max(initial=0.0)))
        top = fused[order[0]] if order else 0.0
        second = fused[order[1]] if len(order) > 1 else 0.0
        return QuerySignals(
            float(coverage),
            lexical,
            float(de.max(initial=0.0)),
            agree,
            tuple(unknown),
            q.foreign,
            *self._bank_votes(sc.bank_entry, self.ids[order[0]] if order else ""),
            refs=bool(q.refs),
            missing=q.missing,
            bare_ref=q.bare_ref,
            margin=float((top - second) / top) if top > 0 else 0.0,
            content=bool(q.content),
            bank=bool(order) and self.clauses[self.ids[order[0]]].standard in self._banked,
        )

    def _bank_votes(self, entry: np.ndarray, top_id: str) -> tuple[float, float, float, bool]:
        """(nearest answerable, nearest unanswerable, share of unanswerable among the
        ``_NEIGHBOURS`` nearest weighted by cosine, does the nearest answerable one point to
        the top hit or a relative)."""
        bank = self.index.bank
        if not len(entry):
            return 0.0, 0.0, 0.0, False
        ok = bank.answerable
        pos = float(entry[ok].max(initial=0.0))
        neg = float(entry[~ok].max(initial=0.0))
        near = np.argsort(-entry)[:_NEIGHBOURS]
        w = np.maximum(entry[near], 0.0)
        share = float(w[~ok[near]].sum() / w.sum()) if w.sum() > 0 else 0.0
        agree = False
        if ok.any() and top_id:
            best = int(np.flatnonzero(ok)[np.argmax(entry[ok])])
            agree = any(self.related(c, top_id) for c in bank.entries[best].clauses)
        return pos, neg, share, agree

    def search(self, question: str, k: int = 5, method: str = "hybrid") -> list[Hit]:
        return self.rank(question, method)[0][:k]


def is_foreign(question: str) -> bool:
    """Mostly not Chinese (an English question)."""
    return len(_CJK.findall(question)) < max(2, len(question.strip()) // 4)


def _is_synonym_key(token: str) -> bool:
    return any(token == segment.stem(key) for key, _ in segment.synonyms())


def _triggers(token: str) -> bool:
    return any(token in key or key in token for key, _ in segment.synonyms() if not key.isascii())
