"""cqo-assistant: cited answers from DB1302/T 589—2024《企业首席质量官制度实施指南》."""

from .settings import Settings  # noqa: I001  (sets offline env vars before anything else loads)
from .answer import Answer, Citation
from .api import Assistant
from .parse import Clause
from .retrieve import Hit

__all__ = ["Answer", "Assistant", "Citation", "Clause", "Hit", "Settings"]
__version__ = "0.1.0"
