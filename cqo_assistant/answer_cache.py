"""An in-process answer cache: the same question, after the same earlier questions, on the same
index build, gets the answer computed the first time (bounded, least recently used first out).

It lives below the HTTP layer, next to ``api``, because it only wraps ``Assistant.ask``: any
front end that answers many users from one process (``cqo serve``'s routes today; a web chat
tomorrow) can share it, and it is tested without a server. ``cqo serve`` keeps one per worker
process (``CQO_ANSWER_CACHE`` entries, default 1000; 0 turns it off) and reports its counters in
``/healthz``.

The key is
- the question as ``Assistant.ask`` reads it: control characters removed, runs of white space
  made one space, trimmed (``api.check_question``). It is not folded further (full-width →
  half-width, traditional → simplified, case): some rules read the question as written, so two
  spellings may get different answers, and a cached answer must be the one ``ask`` would give;
- the follow-up context: the earlier questions (``history``) exactly as sent — a follow-up's
  answer depends on them, and a different history only costs a miss;
- the index version: the name of the build directory the answering ``Assistant`` loaded
  (``assistant.index.root.name``, ``index/CURRENT``'s target), which a rebuilt index changes.
  The version is read from the assistant that computes the answer, never from disk, so an
  answer is stored under the build it came from; and when a request brings a new version, the
  entries of older builds are dropped at once — a rebuilt index never serves a stale answer.

Answers are frozen dataclasses, shared between callers as they are.

With ``shared`` (``http/shared.RedisAnswers`` when ``CQO_REDIS_URL`` is set) a question this
process has not cached is looked up there, under the same key, before it is computed, and a
computed answer is stored there too: every worker and instance answers from one cache. A hit
from ``shared`` counts as a hit here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Protocol

from .answer import Answer
from .api import Assistant, check_question

Key = tuple[str, str, tuple[str, ...]]


class SharedAnswers(Protocol):
    """A store other processes see (Redis). ``get`` returns None, and ``put`` does nothing,
    when the store cannot be reached: the cache then works as if it were not there."""

    def get(self, key: Key) -> Answer | None: ...

    def put(self, key: Key, answer: Answer) -> None: ...


class AnswerCache:
    def __init__(self, size: int, shared: SharedAnswers | None = None) -> None:
        self.size = max(0, size)
        self.shared = shared
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, Answer] = OrderedDict()
        self._version = ""
        self._lock = threading.Lock()

    def ask(self, assistant: Assistant, question: str, history: list[str] | None = None) -> Answer:
        """``assistant.ask(question, history)``, from the cache when it holds that answer. An
        invalid question raises ``InputError`` as ``ask`` does (and is neither hit nor miss)."""
        if not self.size:
            return assistant.ask(question, history or None)
        q = check_question(question, assistant.settings.max_question_chars)
        version = assistant.index.root.name
        key: Key = (version, q, tuple(history or ()))
        with self._lock:
            if version != self._version:  # a rebuilt index is answering: forget the old one's
                for k in [k for k in self._entries if k[0] != version]:
                    del self._entries[k]
                self._version = version
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return hit
        answer = self.shared.get(key) if self.shared is not None else None
        with self._lock:
            if answer is not None:
                self.hits += 1
            else:
                self.misses += 1
        if answer is None:  # outside the lock: concurrent misses may both compute (same answer)
            answer = assistant.ask(question, history or None)
            if self.shared is not None:
                self.shared.put(key, answer)
        with self._lock:
            if version == self._version:  # not if a newer build took over meanwhile
                self._entries[key] = answer
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return answer

    def stats(self) -> dict[str, Any]:
        """Counters since the process started (each worker process has its own cache)."""
        with self._lock:
            return {
                "size": self.size,
                "entries": len(self._entries),
                "hits": self.hits,
                "misses": self.misses,
            }

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
