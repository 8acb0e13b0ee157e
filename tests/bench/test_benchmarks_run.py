"""The benchmarks keep working: each runs end to end at a tiny size and writes its report.

Only that they run and report is checked here: numbers computed from what they measured,
positive rates, the expected fields. Their speed targets are read from the benchmarks' own
output on a quiet machine, never asserted in tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.harness import parse_wrk, percentile
from tests.support.programs import require_program

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"frontend", "stock-symbol", "stock-price", "logo-resizer", "queue-worker"}


def run_benchmark(script: str, output: Path, *args: str) -> tuple[str, dict[str, Any]]:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(output.read_text())
    assert report["benchmark"] == script.removesuffix(".py")
    assert report["machine"]["cpus"] >= 1
    for entry in report["targets"]:
        assert set(entry) == {"name", "measured", "target", "pass"}
        assert isinstance(entry["pass"], bool)
        assert entry["name"] in run.stdout
    return run.stdout, report


def assert_ratio(ratio: float, numerator: float, denominator: float) -> None:
    assert numerator > 0 and denominator > 0
    assert math.isclose(ratio, numerator / denominator, rel_tol=1e-9)


def test_random_pick_benchmark_runs_on_both_backends_and_reports_ratios(tmp_path: Path) -> None:
    stdout, report = run_benchmark(
        "random_pick.py",
        tmp_path / "random_pick.json",
        *("--backend", "all", "--sizes", "100", "2000", "--picks", "200"),
    )
    assert "sqlite   ratio 2,000 / 100 stocks" in stdout
    assert "dynamodb ratio 2,000 / 100 stocks" in stdout
    assert set(report["backends"]) == {"sqlite", "dynamodb"}
    for backend in report["backends"].values():
        results = backend["results"]
        assert set(results) == {"100", "2000"}
        assert all(r["pick_us"] > 0 and r["fill_s"] > 0 for r in results.values())
        assert [r["checks"]["count"] for r in results.values()] == [100, 2000]
        assert_ratio(
            backend["ratio_largest_to_smallest"],
            results["2000"]["pick_us"],
            results["100"]["pick_us"],
        )
    dynamodb = report["backends"]["dynamodb"]["results"]
    assert dynamodb["2000"]["checks"]["add_then_delete"] == "2000 -> 2001 -> 2000"


def test_random_pick_keeps_its_sqlite_only_command_line(tmp_path: Path) -> None:
    stdout, report = run_benchmark(
        "random_pick.py",
        tmp_path / "random_pick.json",
        *("--backend", "sqlite", "--sizes", "50", "500", "--picks", "100"),
    )
    assert set(report["backends"]) == {"sqlite"}
    assert "ratio 500 / 50 stocks" in stdout


@pytest.mark.e2e
def test_page_view_benchmark_runs_against_the_stack_and_hello_world(tmp_path: Path) -> None:
    require_program("wrk")
    _, report = run_benchmark(
        "page_view.py",
        tmp_path / "page_view.json",
        *("--replicas", "2", "--threads", "2", "--connections", "4"),
        *("--duration", "1", "--warmup", "0"),
    )
    reference, direct, site = report["reference"], report["page_view_direct"], report["page_view"]
    for measured in (reference, direct, site):
        assert measured["requests"] > 0
        assert 0 < measured["p50_ms"] <= measured["p99_ms"]
        assert measured["errors"] == 0
    ratios = report["ratios"]
    assert_ratio(
        ratios["throughput"], site["requests_per_second"], reference["requests_per_second"]
    )
    assert_ratio(
        ratios["site_over_direct"], site["requests_per_second"], direct["requests_per_second"]
    )
    assert_ratio(ratios["p99_latency"], site["p99_ms"], reference["p99_ms"])


@pytest.mark.e2e
def test_http_servers_benchmark_compares_uvicorn_and_granian_on_three_apps(
    tmp_path: Path,
) -> None:
    require_program("wrk")
    stdout, report = run_benchmark(
        "http_servers.py",
        tmp_path / "http_servers.json",
        *("--threads", "1", "--connections", "4", "--stocks", "10"),
        *("--duration", "1", "--warmup", "0"),
    )
    assert (
        set(report["apps"]) == set(report["correctness"]) == {"hello", "stock-symbol", "frontend"}
    )
    for app in report["apps"].values():
        for server in ("uvicorn", "granian"):
            measured = app[server]
            assert measured["requests"] > 0 and measured["errors"] == 0
            assert 0 < measured["p50_ms"] <= measured["p99_ms"]
            assert measured["memory_after_load"]["total_rss_mb"] > 0
            assert measured["sigterm"]["exit_code"] is not None  # it stopped by itself
        uvicorn, granian, ratios = app["uvicorn"], app["granian"], app["ratios"]
        assert_ratio(
            ratios["throughput"], granian["requests_per_second"], uvicorn["requests_per_second"]
        )
        assert_ratio(ratios["p50_latency"], granian["p50_ms"], uvicorn["p50_ms"])
        assert_ratio(ratios["p99_latency"], granian["p99_ms"], uvicorn["p99_ms"])
        assert_ratio(
            ratios["cpu_per_request"],
            granian["cpu"]["cpu_us_per_request"],
            uvicorn["cpu"]["cpu_us_per_request"],
        )
        assert_ratio(
            ratios["total_rss"],
            granian["memory_after_load"]["total_rss_mb"],
            uvicorn["memory_after_load"]["total_rss_mb"],
        )
        # uvicorn without --workers serves in its own process, no child.
        assert uvicorn["processes"]["children"] == 0
        assert not uvicorn["processes"]["app_in_child_process"]
    for checked in report["correctness"].values():
        assert set(checked["answers"]) == {"uvicorn", "granian"}
        assert set(checked["answers"]["uvicorn"]) == set(checked["answers"]["granian"])
    symbol = report["correctness"]["stock-symbol"]["answers"]
    assert "POST /api/uploads 5 MB" in symbol["uvicorn"]
    for server in ("uvicorn", "granian"):
        supervision = report["supervision"][server]
        assert supervision["left_after_cleanup"] == []  # the benchmark killed any survivor
    uvicorn_killed = report["supervision"]["uvicorn"]
    assert uvicorn_killed["survivors"] == []
    assert uvicorn_killed["replacement_started_on_the_port"]
    assert uvicorn_killed["sockets_listening_on_the_port_with_the_replacement"] == 1
    assert report["decision"] in {"uvicorn", "granian"}
    assert f"keep: {report['decision']}" in stdout


@pytest.mark.e2e
def test_logo_pipeline_benchmark_runs_and_reports_rates_per_cpu_second(tmp_path: Path) -> None:
    _, report = run_benchmark(
        "logo_pipeline.py",
        tmp_path / "logo_pipeline.json",
        *("--replicas", "1", "--logos", "4", "--latency-samples", "2"),
        *("--image-size", "256", "--distinct-images", "2"),
    )
    bare, pipeline, latency = report["bare"], report["pipeline"], report["latency"]
    assert bare["logos"] == pipeline["logos"] == 4
    assert bare["logos_per_cpu_s"] > 0 and pipeline["logos_per_s"] > 0
    assert pipeline["not_ready"] == 0
    assert pipeline["cpu_s_by_service"]["logo-resizer"] > 0
    assert_ratio(
        report["ratios"]["per_core_consumers"],
        pipeline["logos_per_consumer_cpu_s"],
        bare["logos_per_cpu_s"],
    )
    assert latency["samples"] == len(latency["values_s"]) == 2
    assert 0 < latency["p50_s"] <= latency["p99_s"] <= latency["max_s"]


@pytest.mark.e2e
def test_footprint_benchmark_reports_memory_of_every_replica_and_time_to_ready(
    tmp_path: Path,
) -> None:
    _, report = run_benchmark(
        "footprint.py",
        tmp_path / "footprint.json",
        *("--replicas", "1", "--runs", "1", "--requests", "5"),
    )
    processes = report["memory"]["processes_after_traffic"].values()
    replicas = [p for p in processes if p["role"] == "replica"]
    assert {p["service"] for p in replicas} == SERVICES
    assert len(replicas) == len(SERVICES)  # one replica each
    assert all(p["rss_mb"] > 0 for p in processes)
    assert report["memory"]["max_replica_rss_mb"] == max(p["rss_mb"] for p in replicas)
    startup = report["startup"]
    assert startup["printed_ready_s"][0] > 0
    # Seen from outside, the ready line comes after `up`'s own clock started.
    assert startup["ready_line_s"][0] >= startup["printed_ready_s"][0] - 0.1
    assert_ratio(
        report["ratios"]["max_replica_rss_to_hello_worker"],
        report["memory"]["max_replica_rss_mb"],
        max(report["reference"]["worker_rss_mb"]),
    )


WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8000/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.81ms    3.02ms  61.20ms   83.11%
    Req/Sec     1.64k   210.33     2.01k    71.50%
  Latency Distribution
     50%    9.40ms
     75%   11.02ms
     90%   13.37ms
     99%  812.00us
  32712 requests in 10.01s, 260.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:   3267.88
Transfer/sec:     25.99MB
"""


def test_wrk_output_is_read_with_its_units() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_second == 3267.88
    assert result.latency_ms == {"50": 9.4, "75": 11.02, "90": 13.37, "99": 0.812}
    assert (result.requests, result.seconds) == (32712, 10.01)
    assert result.bytes_per_response == pytest.approx(260.11 * 1024**2 / 32712)
    assert result.errors == 6


def test_wrk_output_without_a_latency_distribution_is_refused() -> None:
    without = "\n".join(line for line in WRK_OUTPUT.splitlines() if "%  " not in line)
    with pytest.raises(ValueError, match="--latency"):
        parse_wrk(without)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    assert percentile([5.0], 99) == 5.0


@pytest.mark.e2e
def test_hostile_images_benchmark_reports_before_and_after(tmp_path: Path) -> None:
    stdout, report = run_benchmark(
        "hostile_images.py",
        tmp_path / "hostile_images.json",
        *("--images", "5", "--side", "600", "--reads", "20", "--uploaders", "2"),
    )
    assert "event loop lateness p99" in stdout
    loop, process, stack = report["event_loop"], report["one_process"], report["stack"]
    assert loop["before_ticks"] > 0 and loop["after_ticks"] > 0
    assert report["ratios"]["loop_p99_before_over_after"] > 0
    for strategy in ("before", "after"):
        assert process[strategy]["peak_mb"] >= process[strategy]["baseline_mb"] > 0
    assert_ratio(
        report["ratios"]["get_p99_busy_over_idle"], stack["busy_p99_ms"], stack["idle_p99_ms"]
    )
    assert stack["upload_statuses"] == [201]
    assert stack["logo_states"] == ["ready"]
    assert len(stack["resizer_peak_rss_mb"]) == 2
    assert all(peak > 0 for peak in stack["resizer_peak_rss_mb"].values())
