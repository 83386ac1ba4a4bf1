"""Launch the real Gradio app on a free loopback port for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cqo_assistant import Assistant, Settings
from cqo_assistant.chat_feedback import FeedbackStore
from cqo_assistant.webchat import build_ui, launch
from tests.http_helpers import free_port


@contextmanager
def running_app(assistant: Assistant, settings: Settings, data_dir: Path) -> Iterator[str]:
    demo = build_ui(assistant, settings, FeedbackStore(data_dir))
    port = free_port()
    launch(demo, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
