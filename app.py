"""Gradio web chat for DB1302/T 589—2024. `make run` starts it on http://127.0.0.1:7860.

    python app.py [--host 127.0.0.1] [--port 7860] [--share]

Settings come from CQO_* env vars (see README). A missing or stale index is refused with the
command that rebuilds it (`make run` builds it first).
"""

from __future__ import annotations

import argparse
import sys

from cqo_assistant import Assistant, Settings
from cqo_assistant.errors import CQOError
from cqo_assistant.webchat import build_ui, launch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="首席质量官制度实施指南 问答 (web chat)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="Gradio share link (off by default)")
    args = p.parse_args(argv)
    settings = Settings.load()
    try:
        assistant = Assistant.load(settings)
    except CQOError as e:
        print(f"错误 / error: {e}", file=sys.stderr)
        return e.exit_code
    launch(build_ui(assistant, settings), host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
