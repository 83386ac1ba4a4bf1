"""Layers import downward only: no module imports the CLI, and nothing below the HTTP layer
imports it (issue 13, "Structure")."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "cqo_assistant"


def imports(path: Path) -> set[str]:
    """Modules ``path`` imports, as absolute names inside the package (``cqo_assistant.cli``)."""
    here = path.relative_to(PKG.parent).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(here[: len(here) - node.level + 1]) if node.level else []
            mod = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def modules() -> dict[str, set[str]]:
    return {
        ".".join(p.relative_to(PKG.parent).with_suffix("").parts): imports(p)
        for p in PKG.rglob("*.py")
    }


def test_no_module_imports_the_cli() -> None:
    found = {m for m, deps in modules().items() if "cqo_assistant.cli" in deps}
    assert found == set(), f"import the CLI: {sorted(found)}"


def test_only_the_http_layer_imports_it() -> None:
    found = {
        m
        for m, deps in modules().items()
        if not m.startswith("cqo_assistant.http")
        and any(d == "cqo_assistant.http" or d.startswith("cqo_assistant.http.") for d in deps)
    }
    assert found == set(), f"import the HTTP layer from below: {sorted(found)}"
