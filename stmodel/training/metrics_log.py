"""metrics.jsonl: one JSON record per step, consistent across restarts."""

from __future__ import annotations

import json
from pathlib import Path


def truncate_after(path: Path, step: int) -> None:
    """Drop records of steps after the checkpoint a run resumes from (they will be redone)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line and json.loads(line).get("step", 0) <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))


def append(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
