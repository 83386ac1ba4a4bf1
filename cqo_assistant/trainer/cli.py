"""``cqo outline``, ``cqo quiz`` (and ``cqo quiz --check FILE.json``) and ``cqo handout``.

The format comes from ``--format`` or from the ``-o`` file's extension; a file name whose
extension contradicts ``--format`` is refused, one without an extension gets it added. Text
formats go to stdout without ``-o``; Office files to ``cqo-<verb>.<ext>`` in the current folder.
A missing folder, a folder given as the file, or a path that cannot be written exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..settings import Settings
from .check import CHECKS, check_paper
from .corpus import Corpus, chapter_scope, select_clauses
from .model import DEFAULT_COURSE, KINDS
from .outline import build_handout, build_outline
from .paper import build_paper, check_count
from .writers import FORMATS, render
from .writers.json_out import read_paper

TEXT_FORMATS = ("md", "json")
_ALIASES = {"markdown": "md"}


def _corpus(args: argparse.Namespace, code: str | None = None) -> Corpus:
    settings = Settings.load(corpus_dir=getattr(args, "corpus", None))
    return Corpus.load(settings, code or getattr(args, "standard", None))


def output_target(out: str | None, fmt: str | None, verb: str) -> tuple[Path | None, str]:
    """(file to write or None for stdout, format) from ``-o`` and ``--format``."""
    allowed = FORMATS[verb]
    path = Path(out) if out else None
    ext = path.suffix.lower().lstrip(".") if path else ""
    ext = _ALIASES.get(ext, ext)
    if fmt is None:
        if ext and ext not in allowed:
            raise InputError(
                f"无法从扩展名 .{ext} 判断格式 / cannot tell the format from .{ext}; "
                f"请用 --format 或这些扩展名 / use --format or one of: {', '.join(allowed)}"
            )
        fmt = ext or "md"
    if path is not None:
        if path.is_dir():
            raise InputError(f"{path} 是文件夹，不是文件 / {path} is a folder, not a file")
        if not ext:
            path = path.with_name(path.name + f".{fmt}")
        elif ext != fmt:
            raise InputError(
                f"输出文件 {out} 的扩展名与格式 {fmt} 不符 / -o {out} does not match --format "
                f"{fmt}; 请改用 / use a .{fmt} name"
            )
        if path.is_dir():
            raise InputError(f"{path} 是文件夹，不是文件 / {path} is a folder, not a file")
        if not path.parent.is_dir():
            raise InputError(f"文件夹 {path.parent} 不存在 / folder {path.parent} does not exist")
    elif fmt not in TEXT_FORMATS:
        path = Path(f"cqo-{verb}.{fmt}")
    return path, fmt


def _emit(path: Path | None, data: str | bytes) -> int:
    if path is None:
        sys.stdout.write(data if isinstance(data, str) else data.decode("utf-8"))
        return 0
    try:
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
    except OSError as e:
        raise InputError(
            f"无法写入 {path}（{e.strerror}） / cannot write {path}: {e.strerror}"
        ) from None
    print(f"已写入 / wrote {path}", file=sys.stderr)
    return 0


def cmd_outline(args: argparse.Namespace) -> int:
    path, fmt = output_target(args.output, args.format, "outline")
    corpus = _corpus(args)
    outline = build_outline(corpus, args.chapters, course=args.course)
    return _emit(path, render(outline, fmt))


def cmd_check(args: argparse.Namespace) -> int:
    src = Path(args.check)
    try:
        text = src.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise InputError(f"无法读取 {src}（{why}） / cannot read {src}: {why}") from None
    paper = read_paper(text)
    corpus = _corpus(args, paper.code or None)
    problems = check_paper(paper.items, corpus)
    for p in problems:
        print(p)
    counts = Counter(p.check for p in problems)
    summary = ", ".join(f"{c} {counts.get(c, 0)}" for c in CHECKS)
    verdict = "可以直接使用 / fit to hand out" if not problems else "有问题 / has problems"
    print(f"{src}: {len(paper.items)} 题 / items; {summary} — {verdict}")
    return 1 if problems else 0


def cmd_quiz(args: argparse.Namespace) -> int:
    if args.check:
        return cmd_check(args)
    check_count(args.n)
    path, fmt = output_target(args.output, args.format, "quiz")
    corpus = _corpus(args)
    scope = chapter_scope(corpus, args.chapters)
    paper = build_paper(corpus, args.n, args.kinds, args.seed, scope, course=args.course)
    return _emit(path, render(paper, fmt, inline=args.answers == "inline"))


def cmd_handout(args: argparse.Namespace) -> int:
    if args.quiz < 0:
        check_count(args.quiz)
    path, fmt = output_target(args.output, args.format, "handout")
    corpus = _corpus(args)
    quiz = None
    if args.quiz:
        scope = {c.id for c in select_clauses(corpus, args.clauses)}
        quiz = build_paper(corpus, args.quiz, args.kinds, args.seed, scope)
    return _emit(path, render(build_handout(corpus, args.clauses, quiz), fmt))


def _count(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"不是整数 / not a whole number: {s!r}") from None


def register_cli(sub: Any) -> None:
    s = sub.add_parser("outline", help="course outline (modules, objectives, key terms, clauses)")
    s.add_argument("--format", choices=FORMATS["outline"], help="md (default), docx, pptx")
    s.add_argument("-o", "--output", help="output file (md: default stdout)")
    s.add_argument("--chapters", help="only these chapters, e.g. 5,8")
    s.add_argument("--course", default=DEFAULT_COURSE, help="course title")
    s.add_argument("--standard", help="standard code when the corpus holds several")
    s.set_defaults(func=cmd_outline)

    s = sub.add_parser("quiz", help="quiz paper with answers, clause ids and clause text")
    s.add_argument("--n", type=_count, default=30, help="number of items (default 30)")
    s.add_argument("--kinds", default=",".join(KINDS), help="single,multi,judge,blank")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--format", choices=FORMATS["quiz"], help="md (default), docx, json, xlsx")
    s.add_argument("--answers", choices=("separate", "inline"), default="separate")
    s.add_argument("--chapters", help="only clauses of these chapters, e.g. 5,8")
    s.add_argument("--course", default=DEFAULT_COURSE, help="course title on the paper")
    s.add_argument("-o", "--output", help="output file (md/json: default stdout)")
    s.add_argument("--standard", help="standard code when the corpus holds several")
    s.add_argument(
        "--check",
        metavar="FILE.json",
        help="check a paper (quiz --format json) for leaks, repeats, cues, key balance and "
        "ambiguous blanks; exit 1 when it finds any",
    )
    s.set_defaults(func=cmd_quiz)

    s = sub.add_parser("handout", help="printable handout of selected clauses")
    s.add_argument("--clauses", help="clause ids, e.g. 5,8.1 (default: whole standard)")
    s.add_argument("--format", choices=FORMATS["handout"], help="md (default), docx")
    s.add_argument("--quiz", type=_count, default=0, help="append a quiz of N items")
    s.add_argument("--kinds", default=",".join(KINDS))
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("-o", "--output", help="output file (md: default stdout)")
    s.add_argument("--standard", help="standard code when the corpus holds several")
    s.set_defaults(func=cmd_handout)
