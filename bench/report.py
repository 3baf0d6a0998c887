"""Where every benchmark's figures go: printed as JSON, and written to `bench/results/<name>.json`."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def publish(name: str, figures: dict, *, entry: str | None = None, show: bool = True) -> Path:
    """Write `figures` to `bench/results/<name>.json` (and print them unless `show` is false). With
    `entry`, the file keeps one set of figures per entry and only that one is replaced, so runs of
    one benchmark on several engines or sizes stand side by side."""
    path = RESULTS / f"{name}.json"
    report = figures
    if entry is not None:
        report = json.loads(path.read_text()) if path.exists() else {}
        report[entry] = figures
    if show:
        print(json.dumps(figures, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
