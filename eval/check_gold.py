#!/usr/bin/env python3
"""Validate eval/gold.jsonl for DB1302/T 589-2024 (stdlib only).

Usage: python3 eval/check_gold.py [path/to/gold.jsonl]
Exits 1 on any problem.
"""

import json
import os
import sys
from collections import Counter

TYPES = [
    "direct",
    "paraphrase",
    "colloquial",
    "scenario",
    "meta",
    "negative",
    "english",
    "traditional",
    "abbrev",
    "typo",
]
SPLITS = {"dev", "test"}
MIN_PER_TYPE = 10
MIN_NEGATIVE = 20
MIN_TOTAL = 170
REQUIRED_KEYS = {"id", "question", "gold", "type", "split"}

# Canonical clause ids (schema).
_CLAUSES = (
    ["前言", "引言"]
    + [str(i) for i in range(1, 10)]
    + ["3.1", "4.1", "4.2", "4.3", "4.4", "5.1", "5.2", "5.3"]
    + [f"6.{i}" for i in range(1, 8)]
    + ["7.1", "7.1.1", "7.1.2", "7.2", "7.3", "7.4", "7.5", "8.1", "8.2"]
    + [f"9.{i}" for i in range(1, 6)]
)
# parent clause -> last list-item letter
_ITEMS = {
    "5.1": "f",
    "5.2": "d",
    "5.3": "e",
    "7.1.1": "b",
    "7.1.2": "c",
    "7.2": "e",
    "7.3": "g",
    "7.4": "g",
    "7.5": "b",
    "8.1": "g",
    "9.5": "c",
}
LIST_ITEMS = [
    f"{p} {chr(c)})" for p, last in _ITEMS.items() for c in range(ord("a"), ord(last) + 1)
]
CANONICAL = set(_CLAUSES) | set(LIST_ITEMS)
# Ids that must each be the gold of at least one question (chapters 4-9 optional).
MUST_COVER = set(CANONICAL) - {"4", "5", "6", "7", "8", "9"}


def main(path):
    problems = []
    rows = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            if not line.strip():
                problems.append(f"line {ln}: blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"line {ln}: invalid JSON ({e})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"line {ln}: not a JSON object")
                continue
            missing = REQUIRED_KEYS - obj.keys()
            if missing:
                problems.append(f"line {ln}: missing keys {sorted(missing)}")
                continue
            extra = obj.keys() - REQUIRED_KEYS
            if extra:
                problems.append(f"line {ln}: unexpected keys {sorted(extra)}")
            rows.append((ln, obj))

    ids = Counter(o["id"] for _, o in rows)
    for i, c in ids.items():
        if c > 1:
            problems.append(f"duplicate id {i!r} ({c}x)")
    questions = Counter(o["question"].strip() for _, o in rows if isinstance(o["question"], str))
    for q, c in questions.items():
        if c > 1:
            problems.append(f"duplicate question {q!r} ({c}x)")

    covered = set()
    by_type = Counter()
    by_type_split = Counter()
    by_split = Counter()
    for ln, o in rows:
        qid, q, gold, typ, split = o["id"], o["question"], o["gold"], o["type"], o["split"]
        if not isinstance(qid, str) or not qid:
            problems.append(f"line {ln}: bad id {qid!r}")
        if not isinstance(q, str) or not q.strip():
            problems.append(f"line {ln} ({qid}): empty question")
        if typ not in TYPES:
            problems.append(f"line {ln} ({qid}): unknown type {typ!r}")
        if split not in SPLITS:
            problems.append(f"line {ln} ({qid}): bad split {split!r}")
        if not isinstance(gold, list) or not all(isinstance(g, str) for g in gold):
            problems.append(f"line {ln} ({qid}): gold must be a list of strings")
            continue
        if len(set(gold)) != len(gold):
            problems.append(f"line {ln} ({qid}): duplicate ids in gold")
        for g in gold:
            if g not in CANONICAL:
                problems.append(f"line {ln} ({qid}): non-canonical gold id {g!r}")
        if typ == "negative" and gold:
            problems.append(f"line {ln} ({qid}): negative question must have empty gold")
        if typ != "negative" and not gold:
            problems.append(f"line {ln} ({qid}): non-negative question has empty gold")
        covered.update(g for g in gold if g in CANONICAL)
        by_type[typ] += 1
        by_split[split] += 1
        by_type_split[(typ, split)] += 1

    for t in TYPES:
        if by_type[t] < MIN_PER_TYPE:
            problems.append(f"type {t}: {by_type[t]} questions (< {MIN_PER_TYPE})")
        for s in sorted(SPLITS):
            if by_type_split[(t, s)] == 0:
                problems.append(f"type {t}: no {s} questions")
    if by_type["negative"] < MIN_NEGATIVE:
        problems.append(f"negative: {by_type['negative']} questions (< {MIN_NEGATIVE})")
    if len(rows) < MIN_TOTAL:
        problems.append(f"total {len(rows)} questions (< {MIN_TOTAL})")

    def order(cid):
        return (_CLAUSES + LIST_ITEMS).index(cid) if cid in CANONICAL else 10**6

    uncovered = sorted(MUST_COVER - covered, key=order)
    if uncovered:
        problems.append(f"clauses never used as gold: {uncovered}")

    print(f"file: {path}")
    print(f"total: {len(rows)}  (dev {by_split['dev']}, test {by_split['test']})")
    print(f"{'type':<12}{'total':>6}{'dev':>6}{'test':>6}")
    for t in TYPES:
        print(
            f"{t:<12}{by_type[t]:>6}{by_type_split[(t, 'dev')]:>6}{by_type_split[(t, 'test')]:>6}"
        )
    print(
        f"canonical ids covered: {len(covered)}/{len(CANONICAL)} "
        f"(required {len(MUST_COVER & covered)}/{len(MUST_COVER)})"
    )

    if problems:
        print(f"\nFAIL: {len(problems)} problem(s)")
        for p in problems:
            print("  - " + p)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gold.jsonl")
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else default))
