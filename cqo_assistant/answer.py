"""Extractive answers with citations (no LLM needed).

``compose`` is pure: ranked hits + retrieval signals + clause table → :class:`Answer`. Every
quoted text is a clause's verbatim text; every cited id is a clause of the corpus.

Abstention ("本标准未涉及") is decided from the retrieval signals with thresholds calibrated on
the gold dev split by ``cqo eval --calibrate`` (stored in ``data/calibration.json``), not guessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from .parse import Clause, cite_label, related
from .retrieve import Hit, QuerySignals, load_calibration


@dataclass(frozen=True)
class Citation:
    clause: str  # canonical clause id
    path: str
    text: str  # verbatim clause text
    score: float


ANSWERED, CLOSEST, NOT_COVERED = "answered", "closest", "not_covered"


@dataclass(frozen=True)
class Answer:
    question: str
    found: bool  # True only when ``coverage`` is "answered"
    text: str
    citations: tuple[Citation, ...]  # what the answer rests on (empty when not answered)
    related: tuple[Citation, ...] = ()  # closest clauses offered when not answered
    ranked: tuple[str, ...] = ()  # up to 10 clause ids, best first
    # "answered": a cited answer; "closest": no clause clearly answers, the nearest is quoted;
    # "not_covered": clearly outside the standard
    coverage: str = ANSWERED

    def to_json(self, qid: Any = None) -> dict[str, Any]:
        return {
            "id": qid,
            "question": self.question,
            "found": self.found,
            "answer": self.text,
            "citations": [asdict(c) for c in self.citations],
            "related": [asdict(c) for c in self.related],
            "ranked": list(self.ranked),
            "coverage": self.coverage,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Answer:
        """The answer ``to_json`` wrote (a shared answer cache stores answers as JSON)."""
        return cls(
            question=d["question"],
            found=d["found"],
            text=d["answer"],
            citations=tuple(Citation(**c) for c in d["citations"]),
            related=tuple(Citation(**c) for c in d["related"]),
            ranked=tuple(d["ranked"]),
            coverage=d["coverage"],
        )


# What the answerability judge reads: the word/meaning signals, the rules below as one vote, and
# the question bank's nearest questions (answerable vs unanswerable neighbours).
FEATURES = (
    "rules",
    "figure",
    "coverage",
    "bm25",
    "unknown",
    "refs",
    "margin",
    "foreign",
    "dense",
    "agree",
    "bank_pos",
    "bank_neg",
    "bank_gap",
    "bank_neg_share",
    "bank_agree",
)
WORD_FEATURES = FEATURES[:8]  # no cosines: for BM25 alone or an uncalibrated embedder
NOBANK_FEATURES = FEATURES[:10]  # for a standard without a question bank


def features(sig: QuerySignals, rules: bool, figure: bool) -> dict[str, float]:
    return {
        "rules": float(rules),
        "figure": float(figure),
        "coverage": sig.content_coverage,
        "bm25": math.log1p(max(sig.bm25_top, 0.0)),
        "unknown": float(bool(sig.unknown)),
        "refs": float(sig.refs),
        "margin": sig.margin,
        "foreign": float(sig.foreign),
        "dense": sig.dense_top,
        "agree": float(sig.agree),
        "bank_pos": sig.bank_pos,
        "bank_neg": sig.bank_neg,
        "bank_gap": sig.bank_pos - sig.bank_neg,
        "bank_neg_share": sig.bank_neg_share,
        "bank_agree": float(sig.bank_agree),
    }


@dataclass(frozen=True)
class Judge:
    """A logistic model of "the standard answers this", fitted on dev (``cqo eval
    --calibrate``), with two cut-offs chosen by cross-validation: at or above ``answer_at`` the
    answer is cited, below ``closest_at`` the question is outside the standard, in between the
    closest clause is offered as such."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    answer_at: float
    closest_at: float

    def prob(self, feats: dict[str, float]) -> float:
        z = self.bias + sum(
            w * (feats[n] - m) / sc
            for n, m, sc, w in zip(self.names, self.mean, self.scale, self.weights, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Judge | None:
        if not d:
            return None
        return cls(
            tuple(d["names"]),
            tuple(d["mean"]),
            tuple(d["scale"]),
            tuple(d["weights"]),
            float(d["bias"]),
            float(d["answer_at"]),
            float(d["closest_at"]),
        )


@dataclass(frozen=True)
class AnswerConfig:
    """Abstention and citation thresholds (calibrated on dev; see eval/REPORT.md)."""

    min_coverage: float = 0.5  # share of the question's specific words found in the standard
    min_bm25: float = 1.0
    min_dense: float = 0.86  # dense cosine that alone is enough to answer
    # dense cosine below which a Chinese question with words the standard lacks is off-topic,
    # whatever words it shares (唐山 in "唐山这周末会下雨吗"; "王超是谁" uses only the standard's
    # words; an English question's cosines to the Chinese text run lower, so it is not judged so)
    dense_floor: float = 0.0
    cite_ratio: float = 0.75  # cite further hits scoring ≥ this share of the best
    max_citations: int = 3
    judge: Judge | None = None  # answerability from all signals; None: the rules alone
    judge_words: Judge | None = None  # the same without cosines (see ``words_only``)
    judge_nobank: Judge | None = None  # … without the bank, for a standard that has none

    @classmethod
    def load(cls, embedder: str | None = None) -> AnswerConfig:
        """The calibrated thresholds. Cosines are on each model's own scale, so for an index
        built with another embedder than the one calibrated (``CQO_EMBED_MODEL``) the dense
        thresholds are left out — words alone decide — until ``cqo eval --split dev
        --calibrate`` is run for it."""
        calibration = load_calibration()
        data = calibration.get("answer", {})
        cfg = cls(
            **{k: v for k, v in data.items() if k in cls.__annotations__ and "judge" not in k},
            judge=Judge.from_json(data.get("judge")),
            judge_words=Judge.from_json(data.get("judge_words")),
            judge_nobank=Judge.from_json(data.get("judge_nobank")),
        )
        if embedder and calibration.get("embedder", embedder) != embedder:
            return cfg.words_only()
        return cfg

    def words_only(self) -> AnswerConfig:
        """Without the dense thresholds and cosine features: for BM25 alone, or cosines on an
        uncalibrated scale."""
        return replace(
            self,
            min_dense=float("inf"),
            dense_floor=0.0,
            judge=self.judge_words,
            judge_nobank=self.judge_words,
        )


# "How many / how long / how much" questions, and the unit the figure must carry
# ("有几个方面/几项" asks for a list and is not one).
_N = r"(?:\d+(?:\.\d+)?|[一二三四五六七八九十两百千万半]+)\s*"
_UNIT_ASKS: tuple[tuple[str, str], ...] = (
    (r"几岁|多大年纪|多大岁数|年龄|how old|\bage\b", "岁"),
    (r"几个?小时|几个?学时|多少(?:个)?(?:小时|学时)|how many hours", "(?:小时|学时)"),
    (r"几个?(?:工作)?[天日]|多少(?:个)?(?:工作)?[天日]|how many days", "(?:天|日|工作日)"),
    (r"几个?月|多少个?月|how many months", "个?月"),
    (r"几年|多少年|how many years", "年"),
    (r"多久|多长时间|how long", "(?:年|个?月|天|日|小时)"),
    (r"几[次名位人]|多少[次名位人]|how many (?:times|people|persons)", "[次名位人]"),
    (r"多少分(?!钟)|几分(?!钟|之)|满分|总分|分值|how many points", "分(?!钟|之)"),
    (r"多少|最多|最少|上限|下限|比例|how (?:much|many)|what percentage|maximum|minimum", ""),
)


_UNIT = r"(年|个?月|天|日|小时|学时|岁|次|名|人)"
_CHOICE = re.compile(_N + _UNIT + r"\S{0,4}还是\s*" + _N + r"\1")  # "一年还是半年"


def asked_unit(question: str) -> str | None:
    """None: not a quantity question; "": any figure answers it; else the unit a figure in the
    answer must carry (a question about years is not answered by a clause giving hours)."""
    q = question.lower()
    if m := _CHOICE.search(q):
        return re.escape(m.group(1))
    for ask, unit in _UNIT_ASKS:
        if re.search(ask, q):
            return unit
    return None


# a standard's designation is a name, not a figure ("按GB/T 19580导入卓越绩效管理")
_DESIGNATION = re.compile(r"[A-Z]{1,4}\d*(?:/[A-Z])?\s*\d+(?:\.\d+)*(?:\s*[—-]\s*\d{4})?")


def gives_quantity(text: str, unit: str = "") -> bool:
    text = _DESIGNATION.sub(" ", text)
    return bool(re.search(_N + unit if unit else r"\d|%|百分之", text))


def is_covered(sig: QuerySignals, cfg: AnswerConfig) -> bool:
    if sig.dense_top < cfg.dense_floor and sig.content_coverage < 1.0 and not sig.foreign:
        return False
    # it asks about something the standard never names, and the word and meaning matches do
    # not point to one clause (when they do, the word is likely a variant of the standard's)
    if sig.unknown and not sig.agree:
        return False
    if sig.content_coverage >= cfg.min_coverage and sig.bm25_top >= cfg.min_bm25:
        return True
    return sig.dense_top >= cfg.min_dense and sig.agree


def states_figure(question: str, hits: list[Hit], clauses: dict[str, Clause]) -> bool:
    """False when a figure is asked for and the best clause (its list items count as its text)
    states none in the unit asked for; True for any other question."""
    unit = asked_unit(question)
    return unit is None or gives_quantity(_full_text(clauses[hits[0].clause_id], clauses), unit)


def _full_text(clause: Clause, clauses: dict[str, Clause]) -> str:
    return "".join([clause.text, *(clauses[c].text for c in clause.children)])


def _standard_ref(clause: Clause) -> str:
    return f"{clause.standard} {cite_label(clause.number)}"


def _quote(clause: Clause, clauses: dict[str, Clause]) -> str:
    label = cite_label(clause.number)
    title = f"（{clause.title}）" if clause.title else ""
    if clause.is_item and clause.parent:
        parent = clauses[clause.parent]
        ptitle = f"（{parent.title}）" if parent.title else ""
        base, item = clause.number.split(" ", 1)
        return f"第{base}条{ptitle} {item}：“{clause.text}”"
    if not clause.text:  # a heading only: quote short clauses (and their lists), name sections
        kids = [clauses[c] for c in clause.children]
        if all(k.text and not k.title for k in kids):
            listed = "".join(
                f"\n  {k.label}：“{k.text}”"
                + "".join(f"\n    {clauses[i].number.split(' ')[-1]} “{clauses[i].text}”"
                          for i in k.children)
                for k in kids
            )  # fmt: skip
            return f"{label}：“{clause.quote_text}”{listed}"
        parts = "、".join(k.label + (f"（{k.title}）" if k.title else "") for k in kids)
        return f"{label}：“{clause.quote_text}”，包括{parts}"
    items = [clauses[c] for c in clause.children if clauses[c].is_item]
    listed = "".join(f"\n  {k.number.split(' ')[-1]} “{k.text}”" for k in items)
    return f"{label}{title}：“{clause.text}”{listed}"


_LIST_Q = re.compile(
    r"哪些|有什么|什么情况|什么情形|有啥|包括什么|包含什么|都有|几个方面|几方面|what are|list"
)


def select_citations(
    hits: list[Hit],
    cfg: AnswerConfig,
    question: str = "",
    clauses: dict[str, Clause] | None = None,
    exact: bool = False,
) -> list[Hit]:
    """The best hit, plus the next ones whose score is close to it; never a clause that one
    already cited contains or is contained by (its text would be quoted twice). When the
    question asks for a list ("有哪些…") and the best hit is one list item, the whole list (its
    parent) is cited. ``exact``: the question names a clause number: that clause alone."""
    if not hits:
        return []
    first = hits[0]
    if exact:
        return [first]
    parent = clauses[first.clause_id].parent if clauses else None
    if parent and clauses and _LIST_Q.search(question.lower()):
        up = clauses[parent]
        # one list item → its list; one clause of a heading-only chapter the question names
        # ("有哪些工作职责" → chapter 6 工作职责) → the chapter
        if first.clause_id.endswith(")") or (not up.text and up.title and up.title in question):
            first = next((h for h in hits if h.clause_id == parent), first)
    chosen = [first]
    for h in hits[1 : cfg.max_citations * 3]:
        if len(chosen) >= cfg.max_citations or h.score < cfg.cite_ratio * hits[0].score:
            break
        if clauses and not any(related(h.clause_id, c.clause_id, clauses) for c in chosen):
            chosen.append(h)
    return chosen


def decide(
    question: str,
    hits: list[Hit],
    signals: QuerySignals,
    clauses: dict[str, Clause],
    cfg: AnswerConfig,
) -> str:
    """answered | closest | not_covered. A bare clause number is answered with that clause. A
    figure asked for that the best clause does not state, or a question with no word that
    tells clauses apart ("具体有哪些？" asked on its own), is at most "closest"."""
    if not hits or signals.missing:  # "5.4条说了什么": there is no 5.4
        return NOT_COVERED
    if signals.bare_ref:
        return ANSWERED
    rules = is_covered(signals, cfg)
    figure = states_figure(question, hits, clauses)
    sure = figure and (signals.content or signals.refs)
    judge = cfg.judge if signals.bank else cfg.judge_nobank
    if judge is None:  # not calibrated: the rules alone
        return (ANSWERED if sure else CLOSEST) if rules else NOT_COVERED
    p = judge.prob(features(signals, rules, figure))
    if p < judge.closest_at:
        return NOT_COVERED
    return ANSWERED if p >= judge.answer_at and sure else CLOSEST


def compose(
    question: str,
    hits: list[Hit],
    signals: QuerySignals,
    clauses: dict[str, Clause],
    cfg: AnswerConfig,
    coverage: str | None = None,
) -> Answer:
    ranked = tuple(h.clause_id for h in hits[:10])
    coverage = coverage or decide(question, hits, signals, clauses, cfg)
    std = clauses[hits[0].clause_id].standard if hits else "本标准"
    if coverage != ANSWERED:
        near = tuple(_cite(h) for h in _distinct(hits, clauses)[:3])
        if coverage == CLOSEST:
            best = clauses[hits[0].clause_id]
            text = (
                "标准没有直接回答这个问题，最接近的规定是：\n"
                f"{_quote(best, clauses)}\n"
                f"出处：{_standard_ref(best)}（请结合实际情况判断）"
            )
            text += f"\n{_lacks(signals)}" if _lacks(signals) else ""
            others, label = near[1:], "其他相关条款"
        else:
            text = f"本标准（{std}）未涉及这个问题，无法依据本标准回答。{_lacks(signals)}"
            others, label = near, "相关条款（仅供参考）"
        if others:
            refs = "、".join(_standard_ref(clauses[c.clause]) for c in others)
            text += f"\n{label}：{refs}"
        return Answer(question, False, text, (), near, ranked, coverage)
    chosen = select_citations(hits, cfg, question, clauses, exact=signals.refs)
    lines = [_quote(clauses[h.clause_id], clauses) for h in chosen]
    refs = "、".join(cite_label(clauses[h.clause_id].number) for h in chosen)
    text = "根据标准：\n" + "\n".join(lines) + f"\n依据：{std} {refs}"
    return Answer(question, True, text, tuple(_cite(h) for h in chosen), (), ranked, ANSWERED)


def _lacks(signals: QuerySignals) -> str:
    """What the standard lacks, said plainly: a clause number it does not have, else the words
    asked about that it never uses; "" when neither."""
    if signals.missing:
        return f"（本标准没有{'、'.join(cite_label(m) for m in signals.missing)}。）"
    if signals.unknown:
        return f"（本标准中没有“{'”“'.join(signals.unknown)}”。）"
    return ""


def _distinct(hits: list[Hit], clauses: dict[str, Clause]) -> list[Hit]:
    """Hits with every clause that one before it contains or is contained by left out."""
    out: list[Hit] = []
    for h in hits:
        if not any(related(h.clause_id, o.clause_id, clauses) for o in out):
            out.append(h)
    return out


def _cite(h: Hit) -> Citation:
    return Citation(h.clause_id, h.path, h.text, round(h.score, 6))
