#!/usr/bin/env python3
"""Follow-up figures for a dialogs file on any commit of this project, including commits from
before `cqo eval --dialogs` existed (it uses only `Assistant.ask(q, history=…)`, `found` and the
metric functions every version has). This is how eval/BLIND.md's "start-of-round code" dialog
figures were measured:

    git worktree add /tmp/base 07f6338 && cd /tmp/base
    CQO_HOME=/tmp/base PYTHONPATH=/tmp/base python -m cqo_assistant.cli index
    CQO_HOME=/tmp/base PYTHONPATH=/tmp/base python /path/to/eval/dialogs_any_code.py DIALOGS.jsonl

Prints follow-up hit@1 (hierarchical), the share of unanswerable follow-ups not answered
(`found` false), and the two counts.
"""

from __future__ import annotations

import json
import sys

from cqo_assistant import Assistant
from cqo_assistant.evaluate import first_rank, ranking_metrics


def main(path: str) -> None:
    a = Assistant.load()
    parents = {c.id: c.parent for c in a.clauses()}
    ranks, not_answered = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            history: list[str] = []
            for i, turn in enumerate(json.loads(line)["turns"]):
                ans = a.ask(turn["q"], history=list(history))
                history.append(turn["q"])
                if i == 0:
                    continue
                if turn["gold"]:
                    ranks.append(first_rank(list(ans.ranked), turn["gold"], parents, True))
                else:
                    not_answered.append(not ans.found)
    hit1 = ranking_metrics(ranks)["hit@1"]
    share = sum(not_answered) / max(1, len(not_answered))
    print(json.dumps({"follow_up_hit@1": hit1, "unanswerable_not_answered": share,
                      "answerable": len(ranks), "unanswerable": len(not_answered)}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
