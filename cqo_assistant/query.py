"""What a question says, worked out once: the frozen :class:`Query` every channel reads.

Pure functions over text (no index): the question sentence of a story (``split_focus``), talk
about the standard itself (``strip_meta``), clause numbers written the ways people write them
(``find_refs``). ``Retriever.analyse`` adds what needs the index (glossary terms, typo repairs)
and builds the ``Query``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Query:
    text: str  # normalised: halfwidth, simplified, lowercase
    focus: str  # the question sentence of a story, talk about the standard removed
    story: str  # the rest of a story ("" for a one-sentence question)
    expanded: str  # focus (and story) with glossary terms and typo repairs: what dense embeds
    words: tuple[str, ...]  # word-channel tokens (search mode); with a story, focus words twice
    pairs: tuple[str, ...]  # character pairs, focus pairs counted twice
    plain: tuple[str, ...]  # the focus's own words (no glossary): what abstention judges
    content: tuple[str, ...] = ()  # focus words that tell clauses apart (not 首席质量官, 方面)
    refs: tuple[str, ...] = ()  # clause ids the question names ("8.1 d)", "第九章第五条")
    missing: tuple[str, ...] = ()  # clause numbers it names that the standard lacks ("5.4条")
    bare_ref: bool = False  # nothing but a clause reference ("9.5", "第9章讲了什么")
    foreign: bool = False  # mostly not Chinese (an English question)


# --- narratives ------------------------------------------------------------------------------
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*")
_ASKS = re.compile(
    r"[?？]|吗|呢|什么|啥|哪|怎么|怎样|如何|谁|是否|能否|可否|几|多少|多久|有没有|是不是|能不能|"
    r"可不可以|要不要|会不会|该不该|对不对|行不行|算不算|对吗|\bwhat\b|\bwho\b|\bhow\b|\bwhich\b|"
    r"\bcan\b|\bshould\b|\bdoes\b|\bis\b|\bare\b"
)


def split_focus(text: str) -> tuple[str, str]:
    """(question sentence, story). A question of several sentences ("我们厂上月……。按标准，
    这种情况该谁负责？") is asked in its last sentence that asks something; the sentences before
    it are the story. One sentence, or none that asks: the whole text is the focus."""
    parts = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    if len(parts) < 2:
        return text, ""
    asking = [i for i, s in enumerate(parts) if _ASKS.search(s)]
    if not asking:
        return text, ""
    i = asking[-1]
    # a short tail ("谁说得对？", "对吗？", "标准怎么说？") judges the whole story: no split
    if len(re.sub(r"\W", "", strip_meta(parts[i]))) <= 6:
        return text, ""
    return "".join(parts[i:]), "".join(parts[:i])


# --- talk about the standard itself ------------------------------------------------------------
_DOC = r"(?:标准|指南|文件|规范|db1302\S*|《[^》]*》)"
_META = re.compile(
    "|".join(
        [
            r"db1302\s*/?\s*t?\s*589\s*[-—–]*\s*(?:2024)?",
            r"《企业首席质量官制度实施指南》",
            rf"(?:按照?|根据|依据|依照|对照|参照)\s*(?:本|这个|这份|该|咱们的?|我们的?|唐山的?)?{_DOC}"
            r"(?:的?规定|的?要求|来说|来看|来讲|的话)?",
            rf"(?:本|这个|这份|该|此|咱们的?|我们的?)\s*{_DOC}(?:里面|里|中|上|内|当中)?",
            rf"{_DOC}(?:里面|里|中|上)?(?:是|又是)?(?:怎么|如何|咋)(?:说|讲|规定|要求|写)的?",
            rf"{_DOC}(?:里面|里|中|上)(?:有没有|有)?(?:规定|提到|说)?",
        ]
    )
)


def strip_meta(text: str) -> str:
    """Remove talk about the standard itself ("标准怎么说", "按标准", "本标准里"): it names no
    content, and its 标准 would match the clauses on standardisation work (7.3 b), 7.4 b))."""
    out = _META.sub(" ", text)
    return out if re.search(r"[\w\u4e00-\u9fff]", out) else text


# --- clause references -------------------------------------------------------------------------
_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7}
_CN_DIGITS |= {"八": 8, "九": 9}
_NUM = r"[0-9一二两三四五六七八九十]+"
_ITEM_WORD = r"(?:项|款|点|小点|小项|条|个|部分)"


def cn_number(s: str) -> int | None:
    """'3' → 3, '十二' → 12, '二十' → 20, '第' stripped by the caller; None if not a number."""
    if s.isdigit():
        return int(s)
    if not s or any(ch not in _CN_DIGITS and ch != "十" for ch in s):
        return None
    if "十" in s:
        tens, _, ones = s.partition("十")
        return (_CN_DIGITS.get(tens, 1) if tens else 1) * 10 + (_CN_DIGITS.get(ones, 0))
    return _CN_DIGITS[s] if len(s) == 1 else None


def _item(n: int | None) -> str | None:
    return chr(ord("a") + n - 1) if n and 1 <= n <= 26 else None


_CHAPTER_CLAUSE = re.compile(
    rf"第?\s*({_NUM})\s*章\s*(?:的|里的?|中的?)?\s*第\s*({_NUM})\s*(?:条|节)"
    rf"(?:\s*(?:的|里的?|中的?)?\s*第\s*({_NUM})\s*{_ITEM_WORD})?"
)
_NUMBERED = re.compile(
    r"(?<![0-9a-z./-])(\d{1,2}(?:\.\d{1,2}){1,2})(?![\d.]|\s*(?:年|万|元|倍|%|个月|岁|分|小时|天))"
    r"\s*(?:条|节|款)?"
    rf"(?:\s*(?:的|里的?|中的?|里面的?)?\s*(?:第\s*({_NUM})\s*{_ITEM_WORD}"
    r"|\(?\s*([a-g])\s*(?:\)|项|款|条|点)?(?![a-z])))?"
)
_CHAPTER = re.compile(rf"第\s*({_NUM})\s*章|(?<![\d.])(\d{{1,2}})\s*章")
_BARE = re.compile(r"^\s*第?\s*(\d{1,2}(?:\.\d{1,2}){0,2}|前言|引言)\s*(?:条|章|节)?\s*$")
# what is left of a bare reference once the reference is taken out ("第9章讲了什么")
_FILLER = re.compile(
    r"(?:主要|具体|都|一共|大概|到底|究竟|请问|麻烦|帮我|给我|看看|查查|说说|讲讲|解释|解读|"
    r"讲的?是?|说的?是?|写的?是?|规定的?是?|讲了|说了|写了|规定了|包括|包含|涉及|内容|"
    r"什么|啥|哪些|意思|呢|吗|啊|呀|吧|一下|下|是|的|了|有|条款|原文|全文|这条|这一条|"
    r"标准|第|章|条|节|"
    r"what|does|do|say|says|is|in|about|clause|section|chapter|mean|means|the|of|and|how|"
    r"one|item|那|还有|那么)"
)


def find_refs(text: str, ids: Collection[str]) -> tuple[list[str], str]:
    """Clause ids named in ``text`` (normalised), in order, and the text with them removed.
    Only ids of the corpus count ("GB/T 1.1" names no clause here; "5年" is not one)."""
    found: list[str] = []
    rest = text

    def take(m: re.Match[str], cid: str | None) -> str:
        if cid and cid in ids:
            found.append(cid)
            return " "
        return m.group(0)

    def chapter_clause(m: re.Match[str]) -> str:
        ch, cl = cn_number(m.group(1)), cn_number(m.group(2))
        cid = f"{ch}.{cl}" if ch and cl else None
        if cid and m.group(3) and (it := _item(cn_number(m.group(3)))):
            cid = f"{cid} {it})"
        return take(m, cid)

    def numbered(m: re.Match[str]) -> str:
        cid = m.group(1)
        it = _item(cn_number(m.group(2))) if m.group(2) else m.group(3)
        if it and f"{cid} {it})" in ids:
            return take(m, f"{cid} {it})")
        if it and m.group(3):  # "5.1e" where 5.1 has no item e: not a reference
            return m.group(0)
        return take(m, cid)

    def chapter(m: re.Match[str]) -> str:
        n = cn_number(m.group(1) or m.group(2))
        return take(m, str(n) if n else None)

    rest = _CHAPTER_CLAUSE.sub(chapter_clause, rest)
    rest = _NUMBERED.sub(numbered, rest)
    rest = _CHAPTER.sub(chapter, rest)
    if not found and (m := _BARE.match(rest)):
        rest = take(m, m.group(1))
    return list(dict.fromkeys(found)), rest


_EXPLICIT = re.compile(
    rf"第\s*({_NUM})\s*章\s*第\s*({_NUM})\s*条"
    rf"|第\s*({_NUM})\s*章"
    r"|(?<![0-9a-z./-])第?\s*(\d{1,2}(?:\.\d{1,2}){1,2})\s*(?:条|款|节)"
    r"|(?<![0-9a-z./-])(\d{1,2}(?:\.\d{1,2}){1,2})\s*\(?\s*([a-z])\s*\)"
)


def missing_refs(text: str, ids: Collection[str]) -> list[str]:
    """Clause numbers written out as such ("5.4条", "第10章", "第九章第六条", "8.1 h)") that the
    standard does not have: the question asks for a clause that is not there."""
    out = []
    for m in _EXPLICIT.finditer(text):
        if m.group(1):
            ch, cl = cn_number(m.group(1)), cn_number(m.group(2))
            cid = f"{ch}.{cl}" if ch and cl else ""
        elif m.group(3):
            cid = str(cn_number(m.group(3)) or "")
        elif m.group(4):
            cid = m.group(4)
        else:
            cid = f"{m.group(5)} {m.group(6)})"
        if cid and cid not in ids:
            out.append(cid)
    return list(dict.fromkeys(out))


def is_bare(rest: str) -> bool:
    """Nothing but filler left once the reference is taken out."""
    return not re.sub(r"[\W_]", "", _FILLER.sub("", strip_meta(rest)))


def weighted(focus: list[str], story: list[str]) -> tuple[str, ...]:
    """The focus's tokens twice and the story's once: BM25 sums over query tokens, so the
    question sentence outweighs the story's words (bm25s counts repeated query ids)."""
    return tuple(focus + focus + story) if story else tuple(focus)


__all__ = [
    "Query",
    "find_refs",
    "is_bare",
    "missing_refs",
    "split_focus",
    "strip_meta",
    "weighted",
]
