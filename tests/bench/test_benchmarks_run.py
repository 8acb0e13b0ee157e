"""The benchmarks keep working: each runs end to end on a small size (no timing asserted here;
speed targets are read from the benchmarks' own output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_random_pick_benchmark_runs_and_reports_a_ratio(tmp_path: Path) -> None:
    output = tmp_path / "random_pick.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "random_pick.py"),
            "--sizes",
            "100",
            "2000",
            "--picks",
            "500",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "ratio 2,000 / 100 stocks" in run.stdout
    report = json.loads(output.read_text())
    assert set(report["results"]) == {"100", "2000"}
    assert report["ratio_largest_to_smallest"] > 0
