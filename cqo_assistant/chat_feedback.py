"""Feedback on answers (👍/👎 and an optional comment), kept in a real SQLite file.

The file is ``<data_dir>/feedback.sqlite3`` (``CQO_DATA_DIR``, default ``data/``), in WAL mode so
the web app can write while ``cqo feedback export`` reads. Each row keeps the question, the
answer text, the cited clause ids, the rating, the comment and the time (UTC).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from .errors import FeedbackError, InputError
from .settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    cited TEXT NOT NULL,          -- JSON array of clause ids
    found INTEGER NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NOT NULL DEFAULT ''
)
"""
COLUMNS = ("id", "created_at", "question", "answer", "cited", "found", "rating", "comment")
MAX_COMMENT = 2000


def _not_saved(e: Exception) -> str:
    return f"评价未保存，请稍后重试 / your rating was not saved ({e}); please try again later"


class FeedbackStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "feedback.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A transaction; a write the disk refuses (full, read-only, locked too long) rolls back
        and raises FeedbackError, so the user is told the rating was not saved."""
        try:
            db = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as e:
            raise FeedbackError(_not_saved(e)) from e
        try:
            with db:  # commit or roll back
                yield db
        except (sqlite3.OperationalError, OSError) as e:
            raise FeedbackError(_not_saved(e)) from e
        finally:
            db.close()

    def add(
        self,
        question: str,
        answer: str,
        cited: Sequence[str],
        found: bool,
        rating: int,
        comment: str = "",
    ) -> int:
        if rating not in (-1, 1):
            raise InputError("评价只能是 👍 或 👎 / rating must be +1 or -1")
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO feedback (created_at, question, answer, cited, found, rating, comment)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    question,
                    answer,
                    json.dumps(list(cited), ensure_ascii=False),
                    int(found),
                    rating,
                    (comment or "").strip()[:MAX_COMMENT],
                ),
            )
            return int(cur.lastrowid or 0)

    def update(self, row_id: int, rating: int, comment: str | None = None) -> None:
        """Change the rating (and, unless ``comment`` is None, the comment) of one row."""
        if rating not in (-1, 1):
            raise InputError("评价只能是 👍 或 👎 / rating must be +1 or -1")
        with self._db() as db:
            if comment is None:
                db.execute("UPDATE feedback SET rating = ? WHERE id = ?", (rating, row_id))
            else:
                db.execute(
                    "UPDATE feedback SET rating = ?, comment = ? WHERE id = ?",
                    (rating, comment.strip()[:MAX_COMMENT], row_id),
                )

    def rows(self) -> list[dict[str, Any]]:
        with self._db() as db:
            cur = db.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id")
            return [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]

    def export_csv(self, out: TextIO) -> int:
        rows = self.rows()
        w = csv.DictWriter(out, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
        return len(rows)


def cmd_feedback_export(args: Any) -> int:
    store = FeedbackStore(Settings.from_args(args).data_dir)
    if args.output:
        with open(args.output, "w", encoding="utf-8-sig", newline="") as f:  # Excel-friendly
            n = store.export_csv(f)
        print(f"{n} rows written to {args.output}", file=sys.stderr)
    else:
        store.export_csv(sys.stdout)
    return 0


def register_cli(sub: Any) -> None:
    s = sub.add_parser("feedback", help="answer feedback collected in the web chat")
    verbs = s.add_subparsers(dest="feedback_command", required=True)
    e = verbs.add_parser("export", help="write all feedback rows as CSV")
    e.add_argument("--csv", action="store_true", default=True, help="CSV (the only format)")
    e.add_argument("-o", "--output", help="file (default stdout)")
    e.set_defaults(func=cmd_feedback_export)
