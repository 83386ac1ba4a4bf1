"""Trainer toolkit: course outline, quiz bank and handouts, every item traceable to a clause.

Pure logic over the parsed clause tree (no index needed); file writers live in
``coursefiles``. Quiz items are generated from the clause text, never written by hand:

- single: "以下哪一项属于第8.1条“岗位职权保证”的内容？" — the answer is one list item of that
  clause, the distractors are items of *other* lists (so they are never also correct);
- multi: two or three items of one list plus items of other lists;
- judge: a clause verbatim (正确), or the clause with one domain term swapped for a term from a
  sibling clause that the clause itself does not contain (错误);
- blank: a domain term (from the jieba user dictionary) blanked out of the clause.

Everything is deterministic for a seed.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import InputError
from .parse import Clause, load_corpus
from .segment import DATA_DIR

KINDS = ("single", "multi", "judge", "blank")
KIND_NAMES = {"single": "单选题", "multi": "多选题", "judge": "判断题", "blank": "填空题"}
LETTERS = "ABCDEFG"


@dataclass(frozen=True)
class QuizItem:
    kind: str
    stem: str
    options: tuple[str, ...]  # choice texts (single/multi); empty for judge/blank
    answer: str  # "B", "ACD", "正确"/"错误", or the blanked term
    clause: str  # clause id the answer rests on
    explanation: str  # verbatim clause text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Module:
    chapter: Clause
    objectives: tuple[str, ...]
    key_terms: tuple[str, ...]
    clauses: tuple[Clause, ...]  # the chapter and everything under it, in document order


# --- the clause tree -------------------------------------------------------------------------
def load_clauses(corpus_dir: Path) -> list[Clause]:
    return [c for s in load_corpus(corpus_dir) for c in s.clauses]


def descendants(clause: Clause, by_id: dict[str, Clause]) -> list[Clause]:
    out = []
    for cid in clause.children:
        out.append(by_id[cid])
        out.extend(descendants(by_id[cid], by_id))
    return out


def select(clauses: Sequence[Clause], ids: Sequence[str]) -> list[Clause]:
    """The clauses named (e.g. "5", "8.1") with all their descendants, in document order."""
    by_id = {c.id: c for c in clauses}
    chosen: set[str] = set()
    for raw in ids:
        cid = raw.strip()
        if cid not in by_id:
            near = [i for i in by_id if i.startswith(cid.split(".")[0])][:5]
            raise InputError(f"没有条款 “{cid}” / no clause {cid!r}; 例如 / e.g. {', '.join(near)}")
        chosen.add(cid)
        chosen.update(d.id for d in descendants(by_id[cid], by_id))
    return [c for c in clauses if c.id in chosen]


@cache
def domain_terms() -> tuple[str, ...]:
    """Key terms of the standard's domain (the jieba user dictionary), longest first."""
    words = {
        line.split()[0]
        for line in (DATA_DIR / "userdict.txt").read_text("utf-8").splitlines()
        if line.strip()
    }
    return tuple(sorted(words, key=lambda w: (-len(w), w)))


def terms_in(text: str) -> list[str]:
    """Domain terms in ``text``, longest first, skipping terms inside a longer one found."""
    found: list[str] = []
    for t in domain_terms():
        if t in text and not any(t in f for f in found):
            found.append(t)
    return found


def _strip_end(text: str) -> str:
    return text.rstrip("；;。.")


def _lists(clauses: Sequence[Clause]) -> dict[str, list[Clause]]:
    """Clauses that carry a list (a)…) → their items."""
    by_id = {c.id: c for c in clauses}
    return {
        c.id: [by_id[k] for k in c.children if by_id[k].is_item]
        for c in clauses
        if any(by_id[k].is_item for k in c.children if k in by_id)
    }


def _list_name(parent: Clause) -> str:
    return f"第{parent.number}条“{parent.title}”" if parent.title else f"第{parent.number}条"


# --- outline -------------------------------------------------------------------------------
def outline(clauses: Sequence[Clause]) -> list[Module]:
    by_id = {c.id: c for c in clauses}
    modules = []
    for ch in (c for c in clauses if c.parent is None and c.number not in ("前言", "引言")):
        parts = [by_id[k] for k in ch.children]
        subtree = [ch, *descendants(ch, by_id)]
        objectives = []
        for p in parts or [ch]:
            items = [by_id[k] for k in p.children if by_id[k].is_item]
            if items:
                name = p.title or p.text.rstrip("：")
                objectives.append(f"掌握{name}的{len(items)}项内容（{p.label}）")
            elif p.title and "术语" in ch.title:
                objectives.append(f"理解术语“{p.title}”的定义（{p.label}）")
            elif p.text:
                first = p.text.split("。")[0].split("：")[0]
                objectives.append(f"了解：{first}（{p.label}）")
            elif p.title:
                objectives.append(f"理解{p.title}（{p.label}）")
        text = "\n".join(c.text for c in subtree)
        modules.append(Module(ch, tuple(objectives), tuple(terms_in(text)[:8]), tuple(subtree)))
    return modules


# --- quiz ----------------------------------------------------------------------------------
def _single(clauses: Sequence[Clause], rng: random.Random) -> list[QuizItem]:
    lists = _lists(clauses)
    out = []
    for pid, items in sorted(lists.items()):
        others = [i for k, v in lists.items() if k != pid for i in v]
        if len(items) < 2 or len(others) < 3:
            continue
        parent = next(c for c in clauses if c.id == pid)
        for it in items:
            opts = [_strip_end(it.text), *(_strip_end(o.text) for o in rng.sample(others, 3))]
            rng.shuffle(opts)
            out.append(
                QuizItem(
                    "single",
                    f"根据DB1302/T 589—2024，以下哪一项属于{_list_name(parent)}的内容？",
                    tuple(opts),
                    LETTERS[opts.index(_strip_end(it.text))],
                    it.id,
                    it.text,
                )
            )
    return out


def _multi(clauses: Sequence[Clause], rng: random.Random) -> list[QuizItem]:
    lists = _lists(clauses)
    out = []
    for pid, items in sorted(lists.items()):
        others = [i for k, v in lists.items() if k != pid for i in v]
        if len(items) < 3 or len(others) < 2:
            continue
        parent = next(c for c in clauses if c.id == pid)
        for _ in range(max(1, len(items) // 3)):
            right = rng.sample(items, rng.choice((2, 3)))
            wrong = rng.sample(others, 5 - len(right))
            opts = [_strip_end(x.text) for x in right + wrong]
            rng.shuffle(opts)
            answer = "".join(sorted(LETTERS[opts.index(_strip_end(x.text))] for x in right))
            explanation = (
                parent.text + "\n" + "\n".join(f"{i.number.split(' ')[-1]} {i.text}" for i in items)
            )
            out.append(
                QuizItem(
                    "multi",
                    f"根据DB1302/T 589—2024，以下哪些属于{_list_name(parent)}的内容？（多选）",
                    tuple(opts),
                    answer,
                    pid,
                    explanation,
                )
            )
    return out


def _statement_clauses(clauses: Sequence[Clause]) -> list[Clause]:
    return [
        c
        for c in clauses
        if c.text
        and c.number not in ("前言", "引言")
        and not c.text.endswith("：")
        and len(c.text) < 120
    ]


def _judge(clauses: Sequence[Clause], rng: random.Random) -> list[QuizItem]:
    by_id = {c.id: c for c in clauses}
    out = []
    for c in _statement_clauses(clauses):
        if "\n" in c.text:  # a definition with its note: the note is not a statement to judge
            continue
        where = f"（{c.label}）"
        lead = by_id[c.parent].text if c.is_item and c.parent in by_id else ""  # list context
        out.append(QuizItem("judge", f"判断：{lead}{c.text}{where}", (), "正确", c.id, c.text))
        mine = terms_in(c.text)
        siblings = [by_id[k] for k in (by_id[c.parent].children if c.parent in by_id else ())]
        pool = sorted({t for s in siblings if s.id != c.id for t in terms_in(s.text)})
        pool = [t for t in pool if t not in c.text and not any(t in m or m in t for m in mine)]
        if not mine or not pool:
            continue
        old, new = rng.choice(mine), rng.choice(pool)
        false = c.text.replace(old, new, 1)
        out.append(QuizItem("judge", f"判断：{lead}{false}{where}", (), "错误", c.id, c.text))
    return out


def _blank(clauses: Sequence[Clause], rng: random.Random) -> list[QuizItem]:
    out = []
    for c in _statement_clauses(clauses):
        terms = terms_in(c.text)
        if not terms:
            continue
        term = rng.choice(terms)
        stem = c.text.replace(term, "______", 1)
        out.append(QuizItem("blank", f"填空：{stem}（{c.label}）", (), term, c.id, c.text))
    return out


def quiz(
    clauses: Sequence[Clause],
    n: int = 30,
    kinds: Sequence[str] = KINDS,
    seed: int = 1,
) -> list[QuizItem]:
    """A bank of ``n`` items of ``kinds``, spread evenly over the kinds, deterministic for
    ``seed``. Raises InputError when fewer than ``n`` distinct items can be made."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise InputError(f"题型只能是 / kinds must be among: {', '.join(KINDS)} (got {bad})")
    if n < 1:
        raise InputError("题目数量至少为 1 / --n must be at least 1")
    rng = random.Random(seed)
    makers = {"single": _single, "multi": _multi, "judge": _judge, "blank": _blank}
    pools: dict[str, list[QuizItem]] = {}
    for k in kinds:
        seen: set[tuple[str, str]] = set()
        pool = []
        for item in makers[k](clauses, rng):
            key = (item.stem, "|".join(sorted(item.options)))
            if key not in seen:
                seen.add(key)
                pool.append(item)
        rng.shuffle(pool)
        pools[k] = pool
    total = sum(len(p) for p in pools.values())
    if n > total:
        raise InputError(
            f"所选范围和题型最多可生成 {total} 道题，请减少数量 / "
            f"at most {total} distinct items for these kinds and chapters (asked for {n})"
        )
    bank: list[QuizItem] = []
    while len(bank) < n:
        for k in kinds:
            if pools[k] and len(bank) < n:
                bank.append(pools[k].pop())
    return bank


# --- CLI -----------------------------------------------------------------------------------
def _clauses_for(args: argparse.Namespace) -> list[Clause]:
    from .cli import _settings

    clauses = load_clauses(_settings(args).corpus_dir)
    chapters = getattr(args, "chapters", None)
    return select(clauses, chapters.split(",")) if chapters else clauses


def _write(args: argparse.Namespace, data: bytes | str, default_name: str) -> None:
    if args.output:
        Path(args.output).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        print(f"written: {args.output}", file=sys.stderr)
    elif isinstance(data, bytes):
        raise InputError(
            f"二进制格式需要 -o 文件名 / binary formats need -o, e.g. -o {default_name}"
        )
    else:
        sys.stdout.write(data)


def cmd_outline(args: argparse.Namespace) -> int:
    from . import coursefiles

    modules = outline(_clauses_for(args))
    writers = {
        "md": coursefiles.outline_md,
        "docx": coursefiles.outline_docx,
        "pptx": coursefiles.outline_pptx,
    }
    _write(args, writers[args.format](modules), f"outline.{args.format}")
    return 0


def cmd_quiz(args: argparse.Namespace) -> int:
    from . import coursefiles

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bank = quiz(_clauses_for(args), args.n, kinds, args.seed)
    inline = args.answers == "inline"
    if args.format == "json":
        import json

        out: str | bytes = json.dumps([q.to_json() for q in bank], ensure_ascii=False, indent=2)
    elif args.format == "md":
        out = coursefiles.quiz_md(bank, inline)
    else:
        out = coursefiles.quiz_docx(bank, inline)
    _write(args, out, f"quiz.{args.format}")
    return 0


def cmd_handout(args: argparse.Namespace) -> int:
    from . import coursefiles
    from .cli import _settings

    all_clauses = load_clauses(_settings(args).corpus_dir)
    chosen = select(all_clauses, args.clauses.split(",")) if args.clauses else all_clauses
    bank = quiz(chosen, args.quiz, seed=args.seed) if args.quiz else []
    writer = coursefiles.handout_md if args.format == "md" else coursefiles.handout_docx
    _write(args, writer(chosen, bank), f"handout.{args.format}")
    return 0


def register_cli(sub: Any) -> None:
    s = sub.add_parser("outline", help="course outline following the standard's chapters")
    s.add_argument("--format", choices=["md", "docx", "pptx"], default="md")
    s.add_argument("-o", "--output")
    s.add_argument("--chapters", help="e.g. 5,8 (default: all)")
    s.set_defaults(func=cmd_outline)

    s = sub.add_parser("quiz", help="question bank with clause answers")
    s.add_argument("--n", type=int, default=30)
    s.add_argument("--kinds", default=",".join(KINDS))
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--format", choices=["md", "docx", "json"], default="md")
    s.add_argument("--answers", choices=["separate", "inline"], default="separate")
    s.add_argument("--chapters", help="e.g. 5,8 (default: all)")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_quiz)

    s = sub.add_parser("handout", help="printable handout of selected clauses")
    s.add_argument("--clauses", help="e.g. 5,8.1 (default: the whole standard)")
    s.add_argument("--format", choices=["md", "docx"], default="md")
    s.add_argument("--quiz", type=int, default=0, help="append a quiz of N items")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_handout)


# --- web tab ---------------------------------------------------------------------------------
def add_training_tab(settings: Any) -> None:
    """The "培训材料" tab; call inside a ``gr.Blocks()`` context."""
    import tempfile

    import gradio as gr

    from . import coursefiles

    clauses = load_clauses(settings.corpus_dir)
    chapters = [(f"{c.number} {c.title}", c.id) for c in clauses if c.parent is None and c.title]

    def generate(chosen: list[str], kinds: list[str], n: float, seed: float) -> tuple[str, list]:
        try:
            scope = select(clauses, chosen) if chosen else clauses
            bank = quiz(scope, int(n), kinds or list(KINDS), int(seed))
        except InputError as e:
            return f"⚠️ {str(e).split(' / ')[0]}", []
        modules = outline(scope)
        out = Path(tempfile.mkdtemp(prefix="cqo-training-"))
        files = {
            "培训大纲.pptx": coursefiles.outline_pptx(modules),
            "培训大纲.docx": coursefiles.outline_docx(modules),
            "题库.docx": coursefiles.quiz_docx(bank),
            "题库.md": coursefiles.quiz_md(bank).encode("utf-8"),
            "讲义.docx": coursefiles.handout_docx(scope),
        }
        for name, data in files.items():
            (out / name).write_bytes(data)
        preview = coursefiles.quiz_md(bank, inline=True)
        return preview, [str(out / name) for name in files]

    with gr.Tab("培训材料"):
        gr.Markdown("按章节生成培训大纲、题库和讲义，每道题都注明依据条款。")
        with gr.Row():
            pick = gr.CheckboxGroup(chapters, label="章节（不选为全部）")
            kinds = gr.CheckboxGroup(
                [(KIND_NAMES[k], k) for k in KINDS], value=list(KINDS), label="题型"
            )
        with gr.Row():
            n = gr.Slider(1, 60, value=10, step=1, label="题目数量")
            seed = gr.Number(value=1, precision=0, label="随机种子（相同种子生成相同题库）")
        go = gr.Button("生成", variant="primary")
        files = gr.File(label="下载", file_count="multiple")
        preview = gr.Markdown()
        go.click(generate, [pick, kinds, n, seed], [preview, files], api_name="training")
