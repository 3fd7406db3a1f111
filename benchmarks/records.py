"""The JSON record every benchmark here writes to benchmarks/results/ (git-ignored)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from xray_scale.store.metadata import library_versions

RESULTS = Path(__file__).parent / "results"


def save_record(kind: str, figures: dict, *, folder: Path = RESULTS) -> Path:
    """Write ``figures`` with the machine and library versions; print and return the path."""
    record = {
        "benchmark": kind,
        "machine": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "libraries": library_versions(),
        **figures,
    }
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"record: {out}")
    return out
