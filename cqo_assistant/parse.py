"""Parse a standard written to GB/T 1.1 (plain text as extracted from its PDF) into a clause tree.

Pure logic: ``parse_standard(text)`` takes a string and returns a :class:`Standard`. Reading files
lives in :func:`load_corpus`.

What the raw text looks like (and what we undo):
- page headers and page marks on their own line: ``DB1302/T 589—2024``, ``Ⅰ``, ``Ⅲ``;
- the document title on its own line before chapter 1;
- lines broken mid-sentence, with blank lines between the pieces;
- fullwidth list labels ``a）`` and stray spaces between Chinese characters.

Clause numbers are accepted only in sequence (the next sibling, the first child, or the next
sibling of an ancestor), so a number at the start of a wrapped line ("5 年以上…") is never taken
for a heading. A line that looks like a heading *ahead* of the sequence ("8 工作保障" right after
6.7, or "c）" right after "a）") means the text lost a part — a PDF extraction that dropped a
page. Taken as text it would fold chapter 8 into 6.7, so every answer after the gap would cite
wrong numbers; the gap is recorded on the :class:`Standard` and :func:`load_corpus` refuses it
unless told to accept it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CorpusError, CorpusGapError

CJK = r"\u3000-\u303f\u4e00-\u9fff\uff00-\uffef\u2018-\u201d\u2014"
_PAGE_MARK = re.compile(r"^[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ\dIVX]{1,4}$")
_CODE = re.compile(r"^((?:GB|DB|HB|QB|T|JB|YY|SB|NY)[\d]*(?:/[TZ])?\s*[\d.]+\s*[—\-–]\s*\d{4})$")
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)(?:\s+(.*))?$")
_ITEM = re.compile(r"^([a-z])[）)]\s*(.*)$")
_SPECIAL = {"前言": "前言", "引言": "引言"}
_END = "。；：！？;:!?"
# what follows a number that starts a wrapped line of running text ("5 年以上", "3 个月")
_MEASURE = "年个名人天日月周项次倍万元岁家条章类种份页位级批小分%％"


@dataclass(frozen=True)
class Clause:
    """One addressable unit of a standard: 前言, 引言, chapter, clause or list item."""

    id: str  # canonical id: "5.1 e)"; prefixed with the standard's code when several are loaded
    number: str  # local id within its standard: "5.1 e)", "7.1.2", "前言"
    title: str  # "任职资格", "" when the clause has none
    text: str  # verbatim clean text of the clause itself (list item: without its label)
    path: tuple[str, ...]  # heading labels from the chapter down to this clause
    parent: str | None  # canonical id of the parent clause
    children: tuple[str, ...]
    standard: str  # the standard's code, "DB1302/T 589—2024"

    @property
    def is_item(self) -> bool:
        return self.number.endswith(")")

    @property
    def quote_text(self) -> str:
        """Verbatim text to quote: the clause's own text, or its heading when it has none."""
        return self.text or f"{self.number} {self.title}".strip()

    @property
    def path_str(self) -> str:
        return " > ".join(self.path)

    @property
    def label(self) -> str:
        """How the clause is cited: "第5.1条 e)", "第7.1.2条", "前言"."""
        return cite_label(self.number)

    def display_text(self) -> str:
        """Verbatim text as shown to users: list items keep their label ("e) …")."""
        if self.is_item:
            return f"{self.number.split(' ')[-1]} {self.text}"
        return self.text


def is_ancestor(anc: str, cid: str, clauses: dict[str, Clause]) -> bool:
    """Is ``anc`` a parent, grand-parent … of ``cid``?"""
    p = clauses[cid].parent
    while p is not None:
        if p == anc:
            return True
        p = clauses[p].parent
    return False


def related(a: str, b: str, clauses: dict[str, Clause]) -> bool:
    """Same clause, or one contains the other (its quote would repeat the other's text)."""
    return a == b or is_ancestor(a, b, clauses) or is_ancestor(b, a, clauses)


def cite_label(number: str) -> str:
    if number in _SPECIAL:
        return number
    if " " in number:
        base, item = number.split(" ", 1)
        return f"第{base}条 {item}"
    return f"第{number}章" if "." not in number else f"第{number}条"


@dataclass(frozen=True)
class Standard:
    code: str
    title: str
    sha256: str
    clauses: tuple[Clause, ...]
    source: str = ""
    gaps: tuple[str, ...] = ()  # parts the text lacks: "第6章之后缺少第7章（…）"

    def by_id(self) -> dict[str, Clause]:
        return {c.id: c for c in self.clauses}


@dataclass
class _Node:
    number: str
    title: str = ""
    paras: list[str] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)
    parent: _Node | None = None


def clean_spaces(s: str) -> str:
    """Drop spaces inside Chinese text; keep them inside codes like "GB/T 19580"."""
    s = s.replace("\u3000", " ").strip()
    s = re.sub(rf"(?<=[{CJK}])\s+(?=[{CJK}])", "", s)
    # CJK next to a short number ("和 5 年", "第 1 部分"), not a code ("GB/T 19580 卓越")
    s = re.sub(rf"(?<=[{CJK}])\s+(?=\d)", "", s)
    s = re.sub(rf"(?<=[{CJK}])(\d{{1,3}})\s+(?=[{CJK}])", r"\1", s)
    return re.sub(r"[ \t]{2,}", " ", s)


def _successors(cur: _Node | None) -> set[str]:
    """Clause numbers that may legally come next after ``cur`` (GB/T 1.1 numbering)."""
    out = {"1"}
    node = cur
    if node is not None and re.fullmatch(r"\d+(?:\.\d+)*", node.number):
        out.add(node.number + ".1")
    while node is not None:
        if re.fullmatch(r"\d+(?:\.\d+)*", node.number):
            head, _, last = node.number.rpartition(".")
            out.add(f"{head}.{int(last) + 1}" if head else str(int(last) + 1))
        node = node.parent
    return out


def _key(number: str) -> tuple[int, ...]:
    return tuple(int(x) for x in number.split("."))


def _looks_like_heading(number: str, rest: str) -> bool:
    """A rejected numbered line that reads like a heading, not wrapped running text."""
    if not rest:
        return "." in number  # a term entry ("3.2" alone); a bare "7" is a page number
    if rest[0] in _MEASURE or not re.match(rf"[{CJK}A-Za-z]", rest):
        return False
    return "." in number or (len(rest) <= 30 and rest[-1] not in _END)


def _missing(number: str, root: _Node) -> str:
    """The first number the text skipped on its way to ``number``: "7" for "8.1" after 6.7."""
    parts = number.split(".")
    node = root
    for depth in range(len(parts)):
        want = ".".join(parts[: depth + 1])
        child = next((c for c in node.children if c.number == want), None)
        if child is None:
            done = [c for c in node.children if re.fullmatch(r"\d+(?:\.\d+)*", c.number)]
            last = _key(done[-1].number)[-1] if done else 0
            return ".".join([*parts[:depth], str(last + 1)])
        node = child
    return number


def _gap_note(missing: str, line: str) -> str:
    """ "第6章之后缺少第7章（见“8 工作保障”）": the sibling before the missing one names the gap."""
    base, _, item = missing.partition(" ")
    if item:
        prev = f"{base} {chr(ord(item[0]) - 1)})" if item[0] > "a" else base
    else:
        head, _, last = base.rpartition(".")
        prev = (f"{head}.{int(last) - 1}" if head else str(int(last) - 1)) if last != "1" else head
    after = cite_label(prev) if prev else "开头"
    return (
        f"{after}之后缺少{cite_label(missing)}（见“{line[:20]}”）/ "
        f"{missing} missing after {prev or 'the start'} (at {line[:20]!r})"
    )


def _strip_headers(lines: list[str], code: str) -> tuple[list[str], str]:
    """Remove page headers/marks; return the remaining lines and the document title."""
    out: list[str] = []
    title = ""
    seen_chapter = False
    for raw in lines:
        line = raw.strip()
        if not line:
            out.append("")
            continue
        if _PAGE_MARK.match(line) or (code and line.replace(" ", "") == code.replace(" ", "")):
            continue
        flat = line.replace(" ", "")
        # the title stands alone, indented, just before chapter 1
        if (
            not seen_chapter
            and raw.startswith((" ", "\u3000"))
            and not _ITEM.match(line)
            and flat not in _SPECIAL
            and not _NUMBERED.match(line)
            and not line.endswith("。")
        ):
            title = flat
            continue
        if re.match(r"^1\s+\S", line):
            seen_chapter = True
        out.append(line)
    return out, title


def find_code(text: str) -> str:
    for line in text.splitlines():
        m = _CODE.match(line.strip())
        if m:
            return re.sub(r"\s*[—\-–]\s*", "—", m.group(1))
    return ""


def parse_standard(text: str, source: str = "") -> Standard:
    """Parse the text of one standard into a clause tree (ids without a code prefix); parts
    the text skips are listed in ``Standard.gaps``."""
    if "\x00" in text or not text.strip():
        raise CorpusError(f"{source or 'corpus file'} is empty or binary")
    code = find_code(text) or Path(source).stem or "STANDARD"
    lines, title = _strip_headers(text.splitlines(), code)

    root = _Node("")
    cur: _Node | None = None  # innermost numbered/special clause
    item: _Node | None = None  # open list item
    pending_term = False  # chapter-3 style "3.1" alone on a line, term on the next line
    gaps: dict[str, str] = {}  # missing number → the line that showed it missing

    def target() -> _Node:
        return item or cur or root

    def add_text(line: str, new_para: bool) -> None:
        node = target()
        if node.paras and not new_para:
            node.paras[-1] += line
        else:
            node.paras.append(line)

    def attach(node: _Node, parent: _Node) -> None:
        node.parent = parent
        parent.children.append(node)

    for line in lines:
        if not line:
            continue
        flat = line.replace(" ", "")
        prev = target().paras[-1] if target().paras else ""
        continues = bool(prev) and prev[-1] not in _END and not pending_term
        if (flat in _SPECIAL and cur is None) or (flat in _SPECIAL and cur.number in _SPECIAL):
            cur, item = _Node(_SPECIAL[flat]), None
            attach(cur, root)
            continue
        m = _NUMBERED.match(line)
        if m and m.group(1) in _successors(cur if cur and cur.number not in _SPECIAL else None):
            number, rest = m.group(1), (m.group(2) or "").strip()
            node = _Node(number)
            parent = root
            if "." in number:
                parent_no = number.rpartition(".")[0]
                p = cur
                while p is not None and p.number != parent_no:
                    p = p.parent
                parent = p or root
            attach(node, parent)
            cur, item = node, None
            if not rest:
                pending_term = True  # a term entry: the term follows on its own line
            elif rest[-1] in _END or len(rest) > 30:
                node.paras.append(clean_spaces(rest))
            else:
                node.title = clean_spaces(rest)
            continue
        if m and cur is not None and cur.number not in _SPECIAL:
            number, rest = m.group(1), clean_spaces(m.group(2) or "")
            if _key(number) > _key(cur.number) and _looks_like_heading(number, rest):
                gaps.setdefault(_missing(number, root), line)
        im = _ITEM.match(line)
        expected = chr(ord("a") + len([c for c in (cur.children if cur else []) if c.number]))
        if im and cur is not None and im.group(1) == expected and not continues:
            item = _Node(f"{cur.number} {im.group(1)})")
            attach(item, cur)
            item.paras.append(clean_spaces(im.group(2)))
            continue
        if im and cur is not None and im.group(1) > expected and not continues:
            gaps.setdefault(f"{cur.number} {expected})", line)
        if pending_term:
            assert cur is not None
            cur.title = clean_spaces(line)
            pending_term = False
            continue
        if cur is None:
            continue  # text before 前言 (cover page): ignored
        if item is not None and not continues:
            item = None  # a paragraph after a list belongs to the list's parent
        add_text(clean_spaces(line), new_para=not continues)

    nodes: list[_Node] = []

    def walk(n: _Node) -> None:
        for c in n.children:
            nodes.append(c)
            walk(c)

    walk(root)
    if not any(n.number == "1" for n in nodes):
        raise CorpusError(
            f"{source or 'corpus file'}: no chapter 1 found — is this a standard written to "
            "GB/T 1.1 (numbered clauses like '1 范围', '5.1 …')?"
        )

    def path_of(n: _Node) -> tuple[str, ...]:
        labels: list[str] = []
        p: _Node | None = n
        while p is not None and p.number:
            if p.number.endswith(")"):
                labels.append(p.number.split(" ")[-1])
            else:
                labels.append(
                    f"{p.number} {p.title}".strip() if p.number not in _SPECIAL else p.number
                )
            p = p.parent
        return tuple(reversed(labels))

    clauses = tuple(
        Clause(
            id=n.number,
            number=n.number,
            title=n.title,
            text="\n".join(n.paras),
            path=path_of(n),
            parent=n.parent.number if n.parent is not None and n.parent.number else None,
            children=tuple(c.number for c in n.children),
            standard=code,
        )
        for n in nodes
    )
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    notes = tuple(_gap_note(n, line) for n, line in gaps.items())
    return Standard(code, title, sha, clauses, source, notes)


def with_prefix(std: Standard) -> Standard:
    """The same standard with every id prefixed by its code ("DB1302/T 589—2024 5.1 e)")."""

    def pre(x: str | None) -> str | None:
        return None if x is None else f"{std.code} {x}"

    clauses = tuple(
        Clause(
            id=f"{std.code} {c.number}",
            number=c.number,
            title=c.title,
            text=c.text,
            path=c.path,
            parent=pre(c.parent),
            children=tuple(f"{std.code} {x}" for x in c.children),
            standard=c.standard,
        )
        for c in std.clauses
    )
    return Standard(std.code, std.title, std.sha256, clauses, std.source, std.gaps)


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 and retry"
        ) from None


def corpus_files(corpus_dir: Path) -> list[Path]:
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus directory {corpus_dir} does not exist")
    files = sorted(p for p in corpus_dir.glob("*.txt") if p.is_file())
    if not files:
        raise CorpusError(f"no .txt standard in {corpus_dir}; copy the standard's text there")
    return files


def expansions_path(txt: Path) -> Path:
    """The optional search-only sidecar of a corpus file: ``<stem>.expansions.json``."""
    return txt.with_name(f"{txt.stem}.expansions.json")


def load_expansions(corpus_dir: Path, standards: list[Standard]) -> dict[str, str]:
    """Search-only text per clause id from each standard's ``<stem>.expansions.json``.

    The sidecar maps a clause number to ``{"en": ..., "ask": [...], "ask_en": [...]}``: an
    English rendering and the ways people ask about the clause (hand-written doc2query). It is
    matched against questions, never quoted. A standard without a sidecar gets none."""
    out: dict[str, str] = {}
    for std in standards:
        path = expansions_path(corpus_dir / std.source)
        if not path.is_file():
            continue
        try:
            data = json.loads(read_text(path))
        except ValueError as e:
            raise CorpusError(f"{path}: not valid JSON ({e}); fix it or remove the file") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise CorpusError(
                f'{path}: expected {{"<clause number>": {{"en": ..., "ask": [...]}}, ...}}'
            )
        by_number = {c.number: c.id for c in std.clauses}
        unknown = sorted(set(data) - set(by_number))
        if unknown:
            raise CorpusError(
                f"{path}: clause numbers not in {std.source}: {', '.join(unknown[:5])}; "
                "fix the keys (see `cqo clauses`)"
            )
        for number, entry in data.items():
            parts = [entry.get("en", ""), *entry.get("ask", []), *entry.get("ask_en", [])]
            out[by_number[number]] = "\n".join(p for p in parts if isinstance(p, str) and p)
    return out


def load_corpus(corpus_dir: Path, allow_gaps: bool = False) -> list[Standard]:
    """Parse every ``*.txt`` in ``corpus_dir``; ids get a code prefix when there are several.
    A standard whose text skips a chapter, clause or list item is refused unless ``allow_gaps``
    (``cqo index --allow-gaps``, recorded in the index's manifest)."""
    stds = [parse_standard(read_text(p), source=p.name) for p in corpus_files(corpus_dir)]
    gaps = [f"{s.source}: {g}" for s in stds for g in s.gaps]
    if gaps and not allow_gaps:
        raise CorpusGapError(gaps)
    codes = [s.code for s in stds]
    dup = {c for c in codes if codes.count(c) > 1}
    if dup:
        raise CorpusError(f"two corpus files carry the same standard code: {', '.join(dup)}")
    return stds if len(stds) == 1 else [with_prefix(s) for s in stds]
