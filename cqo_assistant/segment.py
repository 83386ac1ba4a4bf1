"""Chinese segmentation and query normalisation.

jieba with a domain user dictionary (首席质量官 would otherwise split into 首席/质量/官), a
private ``jieba.Tokenizer`` (the global one is shared state), its cache in a temp dir, and
stop words removed. ``normalize`` folds fullwidth forms, traditional characters (zhconv) and
case; ``expand`` adds the standard's own words for everyday/English ones (data/synonyms.tsv).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import re
import tempfile
import unicodedata
from functools import cache, lru_cache
from pathlib import Path

import jieba
import zhconv

jieba.setLogLevel(logging.WARNING)

DATA_DIR = Path(__file__).resolve().parent / "data"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")
_WORD = re.compile(r"[\w\u4e00-\u9fff]")


def _data(name: str) -> str:
    return (DATA_DIR / name).read_text(encoding="utf-8")


@cache
def stopwords() -> frozenset[str]:
    words: set[str] = set()
    for line in _data("stopwords.txt").splitlines():
        if not line.startswith("#"):
            words.update(line.split())
    return frozenset(words)


@cache
def synonyms() -> tuple[tuple[str, str], ...]:
    pairs = []
    for line in _data("synonyms.tsv").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("\t")
            pairs.append((key.strip().lower(), value.strip()))
    return tuple(pairs)


def strip_control(text: str) -> str:
    """Control and zero-width characters become spaces (newlines and tabs too)."""
    return _CONTROL.sub(" ", text.replace("\n", " ").replace("\t", " "))


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Fullwidth → halfwidth, traditional → simplified, lowercase, control characters removed."""
    text = unicodedata.normalize("NFKC", strip_control(text))
    return zhconv.convert(text, "zh-cn").lower().strip()


@lru_cache(maxsize=4096)
def expand(normalized: str) -> str:
    """Append the standard's terms for everyday / English words found in the question."""
    extra = []
    for key, value in synonyms():
        if key.isascii():
            if re.search(rf"(?<![a-z]){re.escape(key)}(?![a-z])", normalized):
                extra.append(value)
        elif key in normalized:
            extra.append(value)
    return normalized + (" " + " ".join(extra) if extra else "")


@cache
def _tokenizer() -> jieba.Tokenizer:
    tk = jieba.Tokenizer()
    tk.tmp_dir = tempfile.gettempdir()
    tk.cache_file = str(Path(tempfile.gettempdir()) / "cqo_jieba.cache")
    tk.initialize()
    tk.load_userdict(str(DATA_DIR / "userdict.txt"))
    return tk


@lru_cache(maxsize=4096)
def _cut(text: str) -> tuple[str, ...]:
    return tuple(_tokenizer().lcut(text, HMM=False))


@lru_cache(maxsize=4096)
def _cut_for_search(text: str) -> tuple[str, ...]:
    """jieba's search mode: each word, and for a long word also its dictionary parts
    (解除聘任 → 解除, 聘任, 解除聘任), so a user-dictionary compound never hides its parts from a
    question that writes them apart ("解除了他的聘任")."""
    return tuple(_tokenizer().lcut_for_search(text, HMM=False))


_SUFFIXES = (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))


@lru_cache(maxsize=8192)
def stem(word: str) -> str:
    """A light English suffix stripper (appoints / appointed / appointing → appoint), enough
    for English questions to meet the English renderings of clauses; Chinese passes through."""
    if not (word.isascii() and word.isalpha()) or len(word) <= 4 or word.endswith("ss"):
        return word
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    return word


def tokenize(text: str) -> list[str]:
    """Tokens for BM25: jieba words in search mode (a compound and its parts), lowercased,
    without stop words or punctuation; English words lightly stemmed.

    A plain callable (cached), usable by bm25s or any other consumer."""
    stop = stopwords()
    return [
        stem(t)
        for t in _cut_for_search(normalize(text))
        if t.strip() and _WORD.search(t) and t not in stop and not (t.isascii() and len(t) == 1)
    ]


_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")


def bigrams(text: str) -> list[str]:
    """Overlapping Chinese character pairs (and ASCII words): a second BM25 vocabulary that
    still matches when jieba cuts a word differently, a typo hits one character, or a
    paraphrase shares only part of a word (敏感信息 / 敏感数据)."""
    t = normalize(text)
    out = [run[i : i + 2] for run in _CJK_RUN.findall(t) for i in range(len(run) - 1)]
    out += [w for w in re.findall(r"[a-z0-9]{2,}", t) if w not in stopwords()]
    return out


# --- what a question asks about -------------------------------------------------------------
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WH = _words("什么 什么样 啥 哪些 哪个 哪种 哪类 哪几个 哪几项 哪几种 哪家 哪里 哪儿 多少")
_WH_AFTER = _words("怎么样 咋样 如何")  # "X怎么样": X is asked about
_LINKS = _words("的 样 个 种 项 类")
# Nouns that name the kind of answer wanted, not its topic ("有什么办法", "要考虑哪些因素")
LIGHT_NOUNS = _words(
    "办法 方法 程度 因素 方面 内容 东西 情况 情形 作用 用处 好处 意义 说法 讲究 措施 途径 "
    "方式 步骤 原因 区别 事 事儿 事情 任务 手里"
)


@cache
def _dictionary() -> bytes:
    """jieba's dictionary file ("word freq tag" lines), kept as bytes (5 MB): looking a word up
    with ``bytes.find`` takes a millisecond or two, where a dict of its 350k tags costs ~80 MB."""
    with _tokenizer().get_dict_file() as f:
        return b"\n" + f.read()


@cache
def _user_tags() -> dict[str, str]:
    rows = (line.split() for line in _data("userdict.txt").splitlines())
    return {r[0]: r[2] for r in rows if len(r) >= 3}


@lru_cache(maxsize=4096)
def word_tag(word: str) -> str | None:
    """jieba's part of speech of a dictionary word ("n", "v", "vn" …); None outside it."""
    if word in _user_tags():
        return _user_tags()[word]
    blob = _dictionary()
    at = blob.find(b"\n" + word.encode() + b" ")
    if at < 0:
        return None
    parts = blob[at + 1 : blob.find(b"\n", at + 1)].split()
    return parts[2].decode() if len(parts) >= 3 else None


def is_noun(word: str) -> bool:
    """A noun, time or name word; a word outside the dictionary (Minitab, 6σ) counts as a name."""
    if not _WORD.search(word):
        return False
    tag = word_tag(word)
    return tag is None or tag[0] in "nt" or tag in ("vn", "an", "eng")


def asked_about(question: str) -> list[str]:
    """The nouns a question asks about: the run of nouns after a question word ("提交哪些材料"
    → 材料) and the run ending just before "是什么 / 有哪些 / 怎么样" ("评分总分是多少" →
    评分, 总分). Pure; lowercased, traditional folded. English questions give none: without
    parts of speech, the word after "what" is as often a function word as the head noun (tried:
    2 negatives caught for 2 answerable questions wrongly abstained on the gold dev split; 0
    for 1 on 100 fresh questions)."""
    q = normalize(question)
    toks = [t for t in _cut(q) if t.strip()]
    out: list[str] = []
    for i, t in enumerate(toks):
        if t not in _WH and t not in _WH_AFTER:
            continue
        j, after = i + 1, []
        while t in _WH and j < len(toks) and toks[j] in _LINKS:
            j += 1
        while t in _WH and j < len(toks) and is_noun(toks[j]):
            after.append(toks[j])
            j += 1
        out += after
        k = i - 1
        if t in _WH:  # "X是什么 / X有哪些" asks about X; "X有什么Y" about Y only
            if after or k < 0 or toks[k] not in ("是", "有"):
                continue
            k -= 1
        while k >= 0 and is_noun(toks[k]):
            out.append(toks[k])
            k -= 1
    return list(dict.fromkeys(out))


# --- homophone typos (输入法 errors: 规化 → 规划, 聘认 → 聘任) ------------------------------------
_TONE = str.maketrans("āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ", "aaaaeeeeiiiioooouuuuvvvvvnnnm")


@cache
def _pinyin_table() -> dict[int, tuple[str, ...]]:
    """Toneless readings of every CJK character, from pypinyin's character table, read as data
    (importing pypinyin loads its 2.5 MB phrase table too: ~0.4 s of start-up we don't need;
    the version is pinned in pyproject.toml)."""
    spec = importlib.util.find_spec("pypinyin")
    assert spec is not None and spec.origin is not None, "pypinyin is a declared dependency"
    raw = json.loads((Path(spec.origin).parent / "pinyin_dict.json").read_text("utf-8"))
    return {int(k): tuple(dict.fromkeys(v.translate(_TONE).split(","))) for k, v in raw.items()}


def pinyin_keys(word: str, limit: int = 16) -> list[tuple[str, ...]]:
    """Every toneless reading of ``word`` (polyphones give several), at most ``limit``."""
    table = _pinyin_table()
    readings = [table.get(ord(ch), (ch,)) if _CJK_RUN.fullmatch(ch) else (ch,) for ch in word]
    return list(itertools.islice(itertools.product(*readings), limit))


def is_common_word(word: str, min_freq: int = 50) -> bool:
    """A word of jieba's general dictionary (设置, 公式), not a typo (设制, 规化)."""
    return _tokenizer().FREQ.get(word, 0) >= min_freq


def homophones(
    text: str, words: dict[tuple[str, ...], list[str]], known: frozenset[str]
) -> list[str]:
    """Words of the standard that a stretch of ``text`` sounds like but is not written as.

    ``words`` maps pinyin keys to the standard's words; ``known`` is the set of character pairs
    of the standard (a stretch made of them is spelt right). A stretch of 2–4 characters that
    is not in the standard, not a common word, and reads exactly like a word of the standard
    with at least one character in common yields that word."""
    out: list[str] = []
    for run in _CJK_RUN.findall(text):
        for n in (2, 3, 4):
            for i in range(len(run) - n + 1):
                w = run[i : i + n]
                if all(w[j : j + 2] in known for j in range(n - 1)) or is_common_word(w):
                    continue
                for key in pinyin_keys(w):
                    for cand in words.get(key, ()):
                        if cand != w and any(a == b for a, b in zip(cand, w, strict=True)):
                            out.append(cand)
    return list(dict.fromkeys(out))
