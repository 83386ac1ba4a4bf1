"""Hybrid retrieval: jieba-BM25 (bm25s) and dense (Chroma), fused by weighted reciprocal rank.

Why our own fusion and not llama-index's ``QueryFusionRetriever``: it fuses with equal weights
(``reciprocal_rerank``) or min-max of raw scores, and the measured baseline
(shared/notes/retrieval-baseline.md) shows equal-weight RRF makes BM25 *worse* on this standard.
Here BM25 carries most of the weight, dense gets more for questions with little Chinese in them
(English), and the weights are tuned on the gold dev split (``cqo eval``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import segment
from .index import LoadedIndex
from .parse import Clause
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

    @classmethod
    def load(cls) -> FusionConfig:
        """Weights calibrated on the gold dev split (``cqo eval --calibrate``), else defaults."""
        data = load_calibration().get("fusion", {})
        return cls(**{k: v for k, v in data.items() if k in cls.__annotations__})


def load_calibration() -> dict:
    try:
        return json.loads((DATA_DIR / "calibration.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


@dataclass(frozen=True)
class QuerySignals:
    """What the retrievers saw; the answer step uses these to decide whether to abstain."""

    content_coverage: float  # share of specific query tokens that exist in the standard
    bm25_top: float  # best BM25 score over the clauses' text or their expansions
    dense_top: float
    agree: bool  # BM25's and dense's best clause are the same or parent/child
    # what the question asks about (or names in Latin letters: IATF, Minitab) that the standard
    # never uses: "有什么补贴政策" is not answered by clauses that share its other words
    unknown: tuple[str, ...] = ()
    foreign: bool = False  # mostly not Chinese (English): its cosines to Chinese text run lower


@dataclass
class Retriever:
    index: LoadedIndex
    fusion: FusionConfig = field(default_factory=FusionConfig.load)

    def __post_init__(self) -> None:
        self.ids = [c.clause_id for c in self.index.chunks]
        self.clauses: dict[str, Clause] = {c.id: c for s in self.index.standards for c in s.clauses}
        self._pos = {cid: i for i, cid in enumerate(self.ids)}
        self.generic = self._generic_terms()  # words too common to tell clauses apart
        self.generic_pairs = self._generic_terms(segment.bigrams)
        self.vocab = set(self.index.bm25.vocab) | set(self.index.bm25_expansion.vocab)
        # English words are judged by the vocabulary only when clauses have English renderings
        # (expansions; the expansion channel's vocabulary also holds clause text, "gb" and all)
        self.english = any(c.expansion for c in self.index.chunks)
        corpus = "".join(segment.normalize(c.text) for c in self.index.chunks)
        self._bigrams = frozenset(corpus[i : i + 2] for i in range(len(corpus) - 1))
        self._chars = frozenset(corpus)
        self.query_text = lru_cache(maxsize=1024)(self._query_text)  # 3 channels share it
        self._sounds: dict[tuple[str, ...], list[str]] = {}  # pinyin → the standard's words
        for w in self.index.bm25.vocab:
            if 2 <= len(w) <= 4 and _CJK.fullmatch(w[0]) and _CJK.fullmatch(w[-1]):
                for key in segment.pinyin_keys(w):
                    self._sounds.setdefault(key, []).append(w)

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

    def _informs(self, terms: list[str], vocab: dict[str, int], generic: frozenset[str]) -> bool:
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

    # --- single retrievers -------------------------------------------------------------
    def _query_text(self, question: str) -> str:
        """The question normalised, with the standard's terms for its everyday / English words
        and for words it mistypes with a same-sounding character (规化 → 规划)."""
        q = segment.normalize(question)
        fixed = segment.homophones(q, self._sounds, self._bigrams)
        return segment.expand(q + (" " + " ".join(fixed) if fixed else ""))

    def query_tokens(self, question: str) -> list[str]:
        return segment.tokenize(self.query_text(question))

    def bm25_scores(self, question: str) -> np.ndarray:
        return self.index.bm25.scores(self.query_tokens(question))

    def dense_scores(self, question: str) -> np.ndarray:
        """Cosine similarity of the question to every clause, in index order. The question is
        embedded with its glossary terms and typo repairs added (``query_text``): measured on
        dev, dense hit@1 0.76 → 0.84; on test 0.74 → 0.77."""
        vec = self.index.embedder.embed_queries([self.query_text(question)])[0]
        res = self.index.collection.query(
            query_embeddings=[vec.tolist()], n_results=len(self.ids), include=["distances"]
        )
        out = np.zeros(len(self.ids), dtype=np.float32)
        for cid, dist in zip(res["ids"][0], res["distances"][0], strict=True):
            out[self._pos[cid]] = 1.0 - float(dist)
        return out

    # --- fusion --------------------------------------------------------------------------
    def _rrf(self, scores: np.ndarray, weight: float, only_positive: bool) -> np.ndarray:
        order = np.argsort(-scores, kind="stable")
        ranks = np.empty(len(scores), dtype=np.float32)
        ranks[order] = np.arange(1, len(scores) + 1)
        contrib = weight / (self.fusion.rrf_k + ranks)
        if only_positive:
            contrib[scores <= 0] = 0.0
        return contrib

    def bigram_scores(self, question: str) -> np.ndarray:
        return self.index.bm25_bigram.scores(segment.bigrams(self.query_text(question)))

    def expansion_scores(self, question: str) -> np.ndarray:
        return self.index.bm25_expansion.scores(self.query_tokens(question))

    def fuse(
        self,
        question: str,
        bm: np.ndarray,
        de: np.ndarray,
        bg: np.ndarray | None = None,
        ex: np.ndarray | None = None,
    ) -> np.ndarray:
        """Weighted RRF of word BM25, dense, character-pair BM25 and expansion BM25; dense
        weighs differently when the question is mostly not Chinese."""
        f = self.fusion
        wd = f.w_dense_foreign if is_foreign(question) else f.w_dense
        words = self.query_tokens(question)
        pairs = segment.bigrams(self.query_text(question))
        fused = self._rrf(de, wd, False)
        if self._informs(words, self.index.bm25.vocab, self.generic):
            fused += self._rrf(bm, f.w_bm25, True)
        if f.w_bigram and self._informs(pairs, self.index.bm25_bigram.vocab, self.generic_pairs):
            bg = self.bigram_scores(question) if bg is None else bg
            fused += self._rrf(bg, f.w_bigram, True)
        if f.w_expansion and self._informs(words, self.index.bm25_expansion.vocab, self.generic):
            ex = self.expansion_scores(question) if ex is None else ex
            fused += self._rrf(ex, f.w_expansion, True)
        return fused

    def rank(self, question: str, method: str = "hybrid") -> tuple[list[Hit], QuerySignals]:
        """All clauses ranked best first by ``method`` (hybrid | bm25 | dense)."""
        tokens = self.query_tokens(question)
        bm = self.index.bm25.scores(tokens)
        ex = self.index.bm25_expansion.scores(tokens)  # fusion and abstention both use it
        de = self.dense_scores(question) if method != "bm25" else np.zeros_like(bm)
        fused = {"bm25": bm, "dense": de}.get(method)
        if fused is None:
            fused = self.fuse(question, bm, de, ex=ex)
        order = self._specific_first([int(i) for i in np.argsort(-fused, kind="stable")])
        order = self._definition_first(question, order)
        hits = [
            Hit(
                self.ids[i],
                float(fused[i]),
                self.clauses[self.ids[i]].quote_text,
                self.clauses[self.ids[i]].path_str,
                float(bm[i]),
                float(de[i]),
            )
            for i in order
        ]
        return hits, self._signals(question, tokens, bm, de, ex)

    def _specific_first(self, order: list[int], window: int = 5) -> list[int]:
        """A heading with no text of its own (chapter 8, 7.1) never outranks its own best
        clause: it moves just below the first of its descendants within the top ``window``."""
        out = list(order)
        for i in order[:window]:
            c = self.clauses[self.ids[i]]
            if c.text:
                continue
            pos = out.index(i)
            below = [j for j, k in enumerate(out[:window]) if j > pos and self._under(k, c.id)]
            if below:
                out.insert(below[0], out.pop(pos))
        return out

    def _definition_first(self, question: str, order: list[int]) -> list[int]:
        """ "什么是首席质量官" / "What is a chief quality officer?": the term's entry in the
        terms-and-definitions chapter (GB/T 1.1 chapter 3) goes first."""
        q = segment.expand(segment.normalize(question))
        if not _DEFINITION_Q.search(q):
            return order
        terms = [
            i
            for i in order[:10]
            if (c := self.clauses[self.ids[i]]).title
            and c.parent
            and "术语" in self.clauses[c.parent].title
            and c.title in q
        ]
        return terms[:1] + [i for i in order if i not in terms[:1]]

    def _under(self, k: int, ancestor: str) -> bool:
        p = self.clauses[self.ids[k]].parent
        while p is not None:
            if p == ancestor:
                return True
            p = self.clauses[p].parent
        return False

    def _signals(
        self, question: str, tokens: list[str], bm: np.ndarray, de: np.ndarray, ex: np.ndarray
    ) -> QuerySignals:
        plain = segment.tokenize(segment.normalize(question))
        fired = bool(set(tokens) - set(plain))  # a synonym / glossary entry matched
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
            for t in (segment.asked_about(question) if strange else [])
            if t in strange and t not in self.generic and t not in segment.LIGHT_NOUNS
        ]
        if _CJK.search(question):  # a name in Latin letters in a Chinese question
            names = _LATIN.findall(segment.normalize(question))
            unknown += [w for w in names if not self._known(w)]
        if specific:
            coverage = len(covered) / len(specific)
        else:
            coverage = 1.0 if fired or (plain and all(t in vocab for t in plain)) else 0.0
        b_best, d_best = int(np.argmax(bm)), int(np.argmax(de))
        a, b = self.ids[b_best], self.ids[d_best]
        agree = bool(bm.max() > 0) and (
            a == b or self.clauses[a].parent == b or self.clauses[b].parent == a
        )
        # the best word match in the standard's text or in its expansions (English questions
        # meet only the English renderings)
        lexical = max(float(bm.max(initial=0.0)), float(ex.max(initial=0.0)))
        return QuerySignals(
            float(coverage),
            lexical,
            float(de.max(initial=0.0)),
            agree,
            tuple(unknown),
            is_foreign(question),
        )

    def search(self, question: str, k: int = 5, method: str = "hybrid") -> list[Hit]:
        return self.rank(question, method)[0][:k]


def is_foreign(question: str) -> bool:
    """Mostly not Chinese (an English question)."""
    return len(_CJK.findall(question)) < max(2, len(question.strip()) // 4)


def _is_synonym_key(token: str) -> bool:
    return any(token == segment.stem(key) for key, _ in segment.synonyms())


def _triggers(token: str) -> bool:
    return any(token in key or key in token for key, _ in segment.synonyms() if not key.isascii())
