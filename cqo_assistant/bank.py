"""The question bank: realistic questions per clause, kept as data beside the standard.

``corpus/<stem>.bank.jsonl``, one object per line (FastGPT / MaxKB "问答对" / "关联问题", written
by hand from the standard — no LLM runs offline)::

    {"id": "w5-0042", "question": "质量老总能不能卡住不让出货？", "clauses": ["8.1 d)"],
     "kind": "answerable", "style": "jargon", "split": "train"}
    {"id": "w5-0901", "question": "首席质量官一个月工资多少？", "clauses": [],
     "kind": "unanswerable", "style": "colloquial", "near": "8.2", "split": "dev"}

``split``: ``train`` questions are indexed (the bank channel of retrieval and the neighbours
that vote on answerability); ``dev`` questions are only for calibration (``cqo eval
--calibrate``), so they never meet themselves in the index. The file is part of the corpus hash
in the manifest and is validated on ``cqo index``.

``corpus/<stem>.dialogs.jsonl`` holds training dialogs, written blind from the standard (2–3
turns, each with the clauses that answer it, [] when none does)::

    {"id": "tA-002", "split": "train", "turns": [{"q": "…CQO得谁任命才算数", "gold": ["4.2"]},
     {"q": "要不要拿去市监局备案？", "gold": []}]}

Their follow-ups (``load_follow_ups``) are indexed too: a new follow-up asks which clauses the
follow-ups most like it were about (``followup.memory_votes``). The file is part of the corpus
hash as well. A dialog's batch is its id without the number (``tA``: one writer's set).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import CorpusError
from .parse import Standard, read_text

KINDS = ("answerable", "unanswerable")
SPLITS = ("train", "dev")


@dataclass(frozen=True)
class BankEntry:
    id: str
    question: str
    clauses: tuple[str, ...]  # canonical clause ids; () for an unanswerable question
    kind: str
    style: str
    split: str
    near: str = ""  # for an unanswerable question: the clause it sounds like

    @property
    def answerable(self) -> bool:
        return self.kind == "answerable"


@dataclass(frozen=True)
class FollowUp:
    """A follow-up of a training dialog, the question asked before it, the clauses that answer
    it (() when the standard does not), and its dialog's batch."""

    last: str
    question: str
    clauses: tuple[str, ...]
    batch: str


def bank_path(txt: Path) -> Path:
    return txt.with_name(f"{txt.stem}.bank.jsonl")


def dialogs_path(txt: Path) -> Path:
    return txt.with_name(f"{txt.stem}.dialogs.jsonl")


def batch_of(dialog_id: str) -> str:
    """'tA-002' → 'tA': the dialogs one writer wrote together."""
    return re.sub(r"-\d+$", "", dialog_id)


def load_follow_ups(corpus_dir: Path, standards: list[Standard]) -> list[FollowUp]:
    """Every follow-up of every standard's training dialogs; a bad line is refused with the
    file and line named."""
    out: list[FollowUp] = []
    for std in standards:
        path = dialogs_path(corpus_dir / std.source)
        if not path.is_file():
            continue
        by_number = {c.number: c.id for c in std.clauses} | {c.id: c.id for c in std.clauses}
        for n, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                turns = [(t["q"].strip(), [by_number[g] for g in t["gold"]]) for t in d["turns"]]
                batch = batch_of(str(d["id"]))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise CorpusError(
                    f"{path}:{n}: bad dialog line ({e!r}); each turn needs a question and the "
                    "clause ids that answer it (see `cqo clauses`)"
                ) from None
            out += [
                FollowUp(last, q, tuple(gold), batch)
                for (last, _), (q, gold) in itertools.pairwise(turns)
            ]
    return out


def load_bank(corpus_dir: Path, standards: list[Standard]) -> list[BankEntry]:
    """Every standard's bank, ids mapped to canonical clause ids; a bad line is refused with
    the file and line named."""
    out: list[BankEntry] = []
    seen: set[str] = set()
    for std in standards:
        path = bank_path(corpus_dir / std.source)
        if not path.is_file():
            continue
        by_number = {c.number: c.id for c in std.clauses}
        for n, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                d = json.loads(line)
                entry = _entry(d, by_number)
            except (ValueError, KeyError, TypeError) as e:
                raise CorpusError(f"{where}: bad bank line ({e}); fix or remove it") from None
            if entry.id in seen:
                raise CorpusError(f"{where}: duplicate id {entry.id!r}")
            seen.add(entry.id)
            out.append(entry)
    return out


def _entry(d: dict, by_number: dict[str, str]) -> BankEntry:
    question = d["question"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("empty question")
    kind, split = d["kind"], d.get("split", "train")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    numbers = d["clauses"]
    if not isinstance(numbers, list) or (kind == "answerable") != bool(numbers):
        raise ValueError("answerable questions list their clauses; unanswerable ones list none")
    unknown = [x for x in [*numbers, d.get("near") or ""] if x and x not in by_number]
    if unknown:
        raise ValueError(f"clause numbers not in the standard: {unknown} (see `cqo clauses`)")
    near = d.get("near") or ""
    return BankEntry(
        id=str(d["id"]),
        question=question.strip(),
        clauses=tuple(by_number[x] for x in numbers),
        kind=kind,
        style=str(d.get("style", "")),
        split=split,
        near=by_number.get(near, ""),
    )


_CJK_OR_WORD = re.compile(r"[\u4e00-\u9fff]|[a-z0-9]+")


def pair_set(text: str) -> frozenset[str]:
    """Character pairs of a question, for near-duplicate checks (Jaccard)."""
    units = _CJK_OR_WORD.findall(text.lower())
    return frozenset(a + b for a, b in itertools.pairwise(units))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(
    left: list[str], right: list[str], threshold: float = 0.75
) -> list[tuple[int, int]]:
    """Pairs (i, j) with character-pair Jaccard ≥ ``threshold`` between two lists of questions
    (an inverted index over pairs keeps it far from n×m)."""
    sets_r = [pair_set(q) for q in right]
    where: dict[str, list[int]] = {}
    for j, s in enumerate(sets_r):
        for p in s:
            where.setdefault(p, []).append(j)
    out = []
    for i, q in enumerate(left):
        a = pair_set(q)
        cands = {j for p in a for j in where.get(p, ())}
        out += [(i, j) for j in sorted(cands) if jaccard(a, sets_r[j]) >= threshold]
    return out
