"""Is a quiz paper fit to hand out? Leaks, repeated stems, wording cues, key balance, ambiguous
blanks — checked on the printed text of the items (so a hand-made paper is checked the same
way as a generated one), against the standard they quote.

- **leak**: text that gives one item's answer is shown by another item (its stem or options):
  a right option, a quoted true statement, the term of a gap in its own context
  ("推行质量管理体系"), the original of a swapped term, or a quoted list item together with the
  clause it comes from.
- **repeat**: two items with the same stem.
- **cue**: the right options share a word of the stem, a first or last character, that no wrong
  option has (all right answers end in 权; 社会责任 of the title only in right answers); or,
  over the paper, the right option is mostly the shortest or much shorter/longer on average.
- **balance**: single-choice letters differ by more than one; 正确/错误 differ by more than one.
- **ambiguous**: a blank whose context (two characters either side) the standard also fills
  with something else (负责______建设: 质量文化 and 质量管理体系).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .corpus import Corpus, strip_end
from .model import BLANK, FALSE, LETTERS, TRUE, QuizItem
from .text import (
    SENT_END,
    common_prefix,
    common_suffix,
    context,
    left_window,
    quoted,
    right_window,
)

CHECKS = ("leak", "repeat", "cue", "balance", "ambiguous")
# A stem word this common (share of clauses holding it) is no cue.
RARE = 0.15
_GENERIC = re.compile(
    r"下列哪(一项|些)是该[章条]列出的内容|出自本标准哪一条|横线处应为|（多选）|规定|第[\d.]+[章条]"
    r"|[a-z]\)"
)
_FILLER = r"([^。；！？\n，、：]{1,16}?)"


@dataclass(frozen=True)
class Problem:
    check: str  # one of CHECKS
    items: tuple[int, ...]  # item numbers
    message: str

    def __str__(self) -> str:
        nums = "、".join(f"#{n}" for n in self.items)
        return (
            f"[{self.check}] {nums}: {self.message}" if nums else f"[{self.check}] {self.message}"
        )


def right_options(it: QuizItem) -> list[str]:
    return [o for k, o in enumerate(it.options) if k in it.correct]


def wrong_options(it: QuizItem) -> list[str]:
    return [o for k, o in enumerate(it.options) if k not in it.correct]


def shown(it: QuizItem) -> str:
    """What a trainee reads of an item."""
    return "\n".join((it.stem, *it.options))


def gap_answer(it: QuizItem) -> str:
    """The term that fills a gap item's blank ('' for other items)."""
    if BLANK not in it.stem:
        return ""
    if it.kind == "blank":
        return it.answer
    right = right_options(it)
    return right[0] if len(right) == 1 else ""


def _gap_keys(sentence: str, answer: str) -> list[tuple[str, ...]]:
    left, _, right = sentence.partition(BLANK)
    keys = [(w + answer,) for w in (left_window(left),) if w]
    keys += [(answer + w,) for w in (right_window(right),) if w]
    return keys or [(answer,)]


def _swap_keys(it: QuizItem, corpus: Corpus) -> list[tuple[str, ...]]:
    """The original wording around the swapped term, from the clause the item cites."""
    c = corpus.by_id.get(it.clause_id)
    stmt = quoted(it.stem)
    if c is None or not stmt:
        return []
    sentences = [s for s in re.split(r"(?<=[。；])", c.text) if s]
    best = max(sentences, key=lambda s: common_prefix(s, stmt) + common_suffix(s, stmt))
    p = common_prefix(best, stmt)
    s = min(common_suffix(best, stmt), len(best) - p)
    if p + s >= len(best):
        return []
    seg = best[p : len(best) - s]
    return [
        k
        for k in ((left_window(best[:p]) + seg,), (seg + right_window(best[len(best) - s :]),))
        if k[0] != seg
    ] or [(seg,)]


def key_phrases(it: QuizItem, corpus: Corpus) -> list[tuple[str, ...]]:
    """Texts (all parts of a tuple together) that, shown by another item, give this one away."""
    if ans := gap_answer(it):
        return _gap_keys(quoted(it.stem), ans)
    if it.form == "source" or (it.kind == "single" and it.stem.endswith("出自本标准哪一条？")):
        member, right = quoted(it.stem), right_options(it)
        if not member or not right:
            return []
        label, _, title = right[0].partition("（")
        return [(member, label)] + ([(member, title.rstrip("）"))] if title else [])
    if it.kind in ("single", "multi"):
        return [(strip_end(r),) for r in right_options(it)]
    if it.kind == "judge" and it.answer == TRUE and (stmt := quoted(it.stem)):
        return [(strip_end(stmt),)]
    if it.kind == "judge" and it.form == "swap":
        return _swap_keys(it, corpus)
    return []


def leak(a: QuizItem, b: QuizItem, corpus: Corpus) -> tuple[str, ...] | None:
    """The key phrase of ``a`` that ``b`` shows, if any."""
    text = shown(b)
    for key in key_phrases(a, corpus):
        if all(part and part in text for part in key):
            return key
    return None


def _cue_text(stem: str) -> str:
    """The stem's own words: without the generic question phrases and a quoted gap sentence."""
    q = quoted(stem)
    if q and BLANK in q:
        stem = stem.replace(q, "")
    return _GENERIC.sub("", stem)


def choice_cues(it: QuizItem, corpus: Corpus) -> list[str]:
    """Wording that singles out the right option(s) of one choice item."""
    right, wrong = right_options(it), wrong_options(it)
    if it.kind not in ("single", "multi") or not right or not wrong:
        return []
    out: list[str] = []
    stem = _cue_text(it.stem)
    df = corpus.bigram_df
    feats = {stem[i : i + 2] for i in range(len(stem) - 1)}
    if len(right) >= 2:
        feats |= set(stem)
    hits = [
        f
        for f in sorted(feats)
        if not any(ch in SENT_END or not ch.strip() or ch in "，、：（）“”？。" for ch in f)
        and df.get(f, 0) <= RARE
        and all(f in r for r in right)
        and not any(f in w for w in wrong)
    ]
    hits = [f for f in hits if not any(f != g and f in g for g in hits)]
    if hits:
        words = "".join(f"“{f}”" for f in hits)
        out.append(f"题干中的{words}只出现在正确选项中 / stem words {hits} only in right options")
    for name, pick in (("末字", lambda s: s[-1:]), ("首字", lambda s: s[:1])):
        ends = {pick(strip_end(r)) for r in right}
        if len(ends) != 1:
            continue
        ch = ends.pop()
        if any(pick(strip_end(w)) == ch for w in wrong):
            continue
        if len(right) >= 2 or ch in stem:
            what = "ending" if name == "末字" else "opening"
            out.append(
                f"正确选项的{name}都是“{ch}”而错误选项没有 / right options share the {what} {ch!r}"
            )
    return out


def blank_fillers(it: QuizItem, corpus: Corpus) -> set[str]:
    """Everything the standard puts between the blank's left and right context."""
    sentence = quoted(it.stem)
    if BLANK not in sentence:
        return set()
    left, _, right = sentence.partition(BLANK)
    lc, rc = context(left, at_end=True), context(right, at_end=False)
    if not lc and not rc:
        return {"*"}
    tail = re.escape(rc) if rc else r"(?=[。；！？，、：\n]|$)"
    pattern = re.compile(re.escape(lc) + _FILLER + tail)
    return {m.group(1) for c in corpus.clauses for m in pattern.finditer(c.text)}


def ambiguous(it: QuizItem, corpus: Corpus) -> set[str]:
    """Other fillers of a blank item's gap ('' set when the blank has one answer)."""
    if it.kind != "blank":
        return set()
    return blank_fillers(it, corpus) - {it.answer}


def _mean_len(options: Sequence[str]) -> float:
    return max(1.0, sum(len(o) for o in options) / max(1, len(options)))


def _length_cues(items: Sequence[QuizItem]) -> list[Problem]:
    choice = [it for it in items if it.kind in ("single", "multi") and wrong_options(it)]
    out: list[Problem] = []
    singles = [it for it in choice if it.kind == "single"]
    shortest = [
        it.number
        for it in singles
        if all(len(right_options(it)[0]) < len(w) for w in wrong_options(it))
    ]
    if len(singles) >= 3 and len(shortest) * 2 > len(singles):
        out.append(
            Problem(
                "cue",
                tuple(shortest),
                f"{len(shortest)}/{len(singles)} 道单选题的正确选项最短 / the right option is the "
                f"shortest in {len(shortest)} of {len(singles)} single-choice items",
            )
        )
    ratios = [_mean_len(right_options(it)) / _mean_len(wrong_options(it)) for it in choice]
    if len(choice) >= 4:
        ratio = sum(ratios) / len(ratios)
        if not 0.75 <= ratio <= 1.33:
            out.append(
                Problem(
                    "cue",
                    (),
                    f"正确选项平均长度是错误选项的 {ratio:.2f} 倍 / right options are {ratio:.2f}× "
                    "as long as wrong ones (mean over choice items)",
                )
            )
    return out


def _balance(items: Sequence[QuizItem]) -> list[Problem]:
    out: list[Problem] = []
    singles = [it for it in items if it.kind == "single" and len(it.correct) == 1]
    if len(singles) >= 2:
        width = min(len(it.options) for it in singles)
        counts = Counter(LETTERS[it.correct[0]] for it in singles)
        per = [counts.get(ch, 0) for ch in LETTERS[:width]]
        if max(per) - min(per) > 1:
            shown_counts = "，".join(f"{ch} {n}" for ch, n in zip(LETTERS, per, strict=False))
            out.append(
                Problem(
                    "balance",
                    (),
                    f"单选题答案分布不均（{shown_counts}） / single-choice keys unbalanced",
                )
            )
    judges = [it.answer for it in items if it.kind == "judge"]
    t, f = judges.count(TRUE), judges.count(FALSE)
    if abs(t - f) > 1:
        out.append(
            Problem(
                "balance",
                (),
                f"判断题正确 {t} 题、错误 {f} 题 / true/false keys unbalanced ({t} vs {f})",
            )
        )
    return out


def check_paper(items: Sequence[QuizItem], corpus: Corpus) -> list[Problem]:
    """Every problem of a paper; an empty list means it can be handed out as is."""
    out: list[Problem] = []
    for a in items:
        for b in items:
            if a is not b and (key := leak(a, b, corpus)):
                out.append(
                    Problem(
                        "leak",
                        (a.number, b.number),
                        f"第{b.number}题显示了第{a.number}题的答案“{'…'.join(key)}” / item "
                        f"{b.number} shows the answer of item {a.number}",
                    )
                )
    stems: dict[str, int] = {}
    for it in items:
        key = "".join(it.stem.split())
        if key in stems:
            out.append(Problem("repeat", (stems[key], it.number), "题干重复 / the same stem twice"))
        stems.setdefault(key, it.number)
    for it in items:
        out += [Problem("cue", (it.number,), msg) for msg in choice_cues(it, corpus)]
    out += _length_cues(items)
    out += _balance(items)
    for it in items:
        if others := ambiguous(it, corpus):
            alt = "、".join(sorted(others))
            out.append(
                Problem(
                    "ambiguous",
                    (it.number,),
                    f"空格处标准中还可填“{alt}” / the standard also fills this blank with {alt}",
                )
            )
    return out
