"""Every error the assistant raises on purpose, each saying how to fix it (中文 / English).

``exit_code`` is what the CLI exits with: 2 bad input, 3 index missing or stale, 4 corpus.
"""

from __future__ import annotations


class CQOError(Exception):
    exit_code = 1

    @property
    def chinese(self) -> str:
        """The Chinese half of the bilingual "中文 / English" message, for Chinese-only screens
        (the web chat, the training tab, WeChat replies)."""
        return str(self).split(" / ")[0].strip()


class InputError(CQOError, ValueError):
    """Bad user input: empty or over-long question, unknown clause id, bad JSONL line."""

    exit_code = 2


class UnknownClauseError(InputError):
    def __init__(self, clause_id: str, nearest: list[str]):
        self.clause_id = clause_id
        self.nearest = nearest
        hint = f"；相近条款 / nearest: {', '.join(nearest)}" if nearest else ""
        super().__init__(f"没有条款 “{clause_id}” / no clause {clause_id!r}{hint}")


class IndexMissingError(CQOError):
    exit_code = 3


class IndexStaleError(CQOError):
    exit_code = 3


class IndexDamagedError(IndexStaleError):
    """Index files missing, truncated or changed since the build (checksums in the manifest)."""


class IndexWriteError(CQOError):
    """The index could not be written (disk full, read-only folder); the old one is kept."""

    exit_code = 3


class IndexBusyError(CQOError):
    """Another build holds the index folder's lock."""

    exit_code = 2


class FeedbackError(CQOError):
    """A rating could not be written (disk full, read-only data folder)."""


class SharedStateError(CQOError):
    """``CQO_REDIS_URL`` is malformed or its Redis does not answer when ``cqo serve`` starts."""

    exit_code = 2

    def __init__(self, url: str, why: str):
        self.url, why = url, why.rstrip(".")
        super().__init__(
            f"共享状态 Redis 不可用 / Redis at {url} (CQO_REDIS_URL) unavailable: {why}. "
            "请启动 redis-server 或检查地址 / start redis-server or fix the URL "
            "(redis://host:port/db), or unset CQO_REDIS_URL to keep state per process"
        )


class CorpusError(CQOError):
    exit_code = 4


class CorpusGapError(CorpusError):
    """The standard's text skips a chapter, clause or list item (a page lost in extraction)."""

    def __init__(self, gaps: list[str]):
        self.gaps = gaps
        shown = "；".join(gaps[:3]) + (f"；… (+{len(gaps) - 3})" if len(gaps) > 3 else "")
        super().__init__(
            f"标准文本不完整 / the standard's text has gaps: {shown}. 请补全文本后重试 / restore "
            "the missing text and retry (or `cqo index --allow-gaps` to index it as it is)"
        )


REBUILD_HINT = "请运行 `cqo index` 重建索引 / run `cqo index` (or `make run`) to rebuild it"
