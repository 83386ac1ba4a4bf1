"""Small text helpers shared by the item builders and the paper check."""

from __future__ import annotations

SENT_END = "。；！？\n"
PUNCT = set("，。；：、！？（）()“”‘’《》,.;:!? /\n")


def sentence_span(toks: list[str], i: int) -> tuple[int, int]:
    """Token range [start, end) of the sentence holding token i (split at 。；！？ and lines)."""
    start = i
    while start > 0 and not any(ch in toks[start - 1] for ch in SENT_END):
        start -= 1
    end = i + 1
    while end < len(toks) and not any(ch in toks[end - 1] for ch in SENT_END):
        end += 1
    return start, end


def replace_token(toks: list[str], i: int, new: str) -> str:
    """The sentence holding token ``i`` with that token replaced (verbatim otherwise)."""
    start, end = sentence_span(toks, i)
    return ("".join(toks[start:i]) + new + "".join(toks[i + 1 : end])).strip()


def quoted(stem: str) -> str:
    """The text between the first “ and the last ” of a stem ('' when there is none)."""
    if "“" not in stem or "”" not in stem:
        return ""
    return stem[stem.index("“") + 1 : stem.rindex("”")]


def left_window(text: str, width: int = 4) -> str:
    """Up to ``width`` characters at the end of ``text``, not reaching back past a sentence end."""
    out = ""
    for ch in reversed(text):
        if ch in SENT_END or ch in "“”" or len(out) == width:
            break
        out = ch + out
    return out


def right_window(text: str, width: int = 4) -> str:
    out = ""
    for ch in text:
        if ch in SENT_END or ch in "“”" or len(out) == width:
            break
        out += ch
    return out


def context(text: str, at_end: bool, min_chars: int = 2) -> str:
    """The shortest end (or start) of ``text`` holding ``min_chars`` non-punctuation characters,
    within its sentence: the fixed context a fill-in blank is read in."""
    seq = reversed(text) if at_end else iter(text)
    out: list[str] = []
    n = 0
    for ch in seq:
        if ch in SENT_END or ch in "“”":
            break
        out.append(ch)
        n += ch not in PUNCT
        if n == min_chars:
            break
    s = "".join(reversed(out)) if at_end else "".join(out)
    return s


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def common_suffix(a: str, b: str) -> int:
    return common_prefix(a[::-1], b[::-1])
