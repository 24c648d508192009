"""The bench's arithmetic: each round's copy is compared with the plain runs of the same round."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from devstack.bench import round_ratios, round_trip_figures, size_row, targets, transfer_seconds

MIB = 1024**2

ROOT = Path(__file__).resolve().parents[2]


def test_round_ratios_divide_each_copy_by_the_slower_plain_transfer_of_its_round() -> None:
    plain = [
        {"upload_seconds": 0.5, "download_seconds": 0.1},
        {"upload_seconds": 0.2, "download_seconds": 0.8},  # a round where the download is slower
    ]
    assert round_ratios([0.55, 1.0], plain) == pytest.approx([1.1, 1.25])


def test_round_ratios_refuse_rounds_that_do_not_pair() -> None:
    with pytest.raises(ValueError):
        round_ratios([0.5, 0.6], [{"upload_seconds": 0.5, "download_seconds": 0.1}])


def _copy(seconds: float, bookkeeping_ms: float, sequential: int = 5, requests: int = 7) -> dict[str, Any]:
    """A copy run as `Copier.copy` reports it, with only what the arithmetic reads."""
    return {
        "bytes": MIB,
        "seconds": seconds,
        "cpu_seconds": seconds / 2,
        "peak_rss_mib": 70.0,
        "init_rss_mib": 60.0,
        "source_gets": 1,
        "round_trips": {
            "requests": requests,
            "sequential": sequential,
            "bookkeeping_requests": 4,
            "bookkeeping_sequential": 2,
            "bookkeeping_ms": bookkeeping_ms,
            "bookkeeping_in_flight_ms": bookkeeping_ms * 2,
        },
    }


def test_transfer_seconds_leave_out_the_bookkeepings_time_on_the_critical_path() -> None:
    assert transfer_seconds(_copy(1.25, bookkeeping_ms=50.0)) == pytest.approx(1.2)


def test_size_row_pairs_each_rounds_transfer_with_its_own_plain_runs() -> None:
    rounds = [
        {"copy": _copy(1.1, 100.0), "plain": {"upload_seconds": 1.0, "download_seconds": 0.5}, "user": None},
        {"copy": _copy(2.2, 200.0), "plain": {"upload_seconds": 0.4, "download_seconds": 2.0}, "user": None},
    ]
    row = size_row(MIB, rounds)
    assert row["transfer_ratio_runs"] == pytest.approx([1.0, 1.0])
    assert row["ratio_runs"] == pytest.approx([1.1, 1.1])
    assert row["copy"]["seconds"] == pytest.approx(1.65)
    assert row["user_copy"] is None


def test_size_row_keeps_the_users_copy_beside_the_copy() -> None:
    plain = {"upload_seconds": 1.0, "download_seconds": 1.0}
    users = [
        {"seconds": 3.0, "cpu_seconds": 1.0, "peak_rss_mib": 150.0, "init_rss_mib": 40.0, "key": "a"},
        {"seconds": 1.0, "cpu_seconds": 0.5, "peak_rss_mib": 140.0, "init_rss_mib": 41.0, "key": "b"},
        {"seconds": 2.0, "cpu_seconds": 0.7, "peak_rss_mib": 160.0, "init_rss_mib": 40.0, "key": "c"},
    ]
    rounds = [{"copy": _copy(1.0, 10.0), "plain": plain, "user": user} for user in users]
    user_copy = size_row(64 * MIB, rounds)["user_copy"]
    assert user_copy["seconds"] == 2.0  # the median
    assert user_copy["cpu_seconds"] == 0.7
    assert user_copy["peak_rss_mib"] == 160.0  # the highest peak
    assert [run["key"] for run in user_copy["runs"]] == ["a", "b", "c"]


def test_round_trip_figures_keep_every_copys_counts_and_print_the_median_one() -> None:
    summaries = [
        _copy(1.0, 30.0, sequential=6, requests=8)["round_trips"],
        _copy(1.0, 10.0, sequential=5, requests=7)["round_trips"],
        _copy(1.0, 20.0, sequential=5, requests=8)["round_trips"],
    ]
    figures = round_trip_figures(summaries)
    assert figures["sequential_runs"] == [6, 5, 5]
    assert figures["requests_runs"] == [8, 7, 8]
    assert figures["typical"] is summaries[2]  # (5, 8) sorts between (5, 7) and (6, 8)
    assert figures["bookkeeping_ms"] == 20.0


def test_targets_judge_the_single_part_copy_by_its_worst_round() -> None:
    def row(size: int, sequential: list[int], transfer_ratio: float, rss: float) -> dict[str, Any]:
        return {
            "bytes": size,
            "round_trips": {"sequential_runs": sequential},
            "transfer_ratio": transfer_ratio,
            "copy": {"peak_rss_mib": rss},
        }

    rows = [
        row(MIB, [5, 7, 5], 1.5, 60.0),
        row(64 * MIB, [6], 1.05, 100.0),
        row(1024 * MIB, [6], 1.01, 110.0),
    ]
    checks = targets(rows, {"speedup": 3.5}, {"import_ratio": 1.2})
    verdicts = {
        check["target"].split(":")[0].split(" (")[0]: (check["value"], check["pass"]) for check in checks
    }
    assert verdicts == {
        "sequential round trips of a 1 MiB single-part copy": (7, False),
        "transfer ratio 64 MiB": (1.05, True),
        "transfer ratio 1 GiB": (1.01, False),
        "peak RSS of the 1 GiB copy, MiB": (110.0, True),
        "peak RSS 1 GiB copy minus the 64 MiB copy's, MiB": (10.0, False),
        "throttled origin": (3.5, True),
        "import of app / bare Powertools handler": (1.2, True),
    }


def _counted_rows() -> list[dict[str, Any]]:
    """Bench rows whose median copies counted what the cost model's profile says, at 1 MiB and 64 MiB."""
    from devstack.cost import COPY_PROFILE

    return [
        {"bytes": size, "round_trips": {"typical": {"by_operation": COPY_PROFILE.requests(size)}}}
        for size in (1024**2, 64 * 1024**2, 1024**3)
    ]


def test_copy_profile_reads_the_requests_the_run_counted() -> None:
    from devstack.bench import copy_profile
    from devstack.cost import COPY_PROFILE, MB

    profile = copy_profile(_counted_rows())
    assert [profile.requests(size) for size in (2 * MB, 20 * MB, 200 * MB)] == [
        COPY_PROFILE.requests(size) for size in (2 * MB, 20 * MB, 200 * MB)
    ]


def test_bench_cost_prints_the_table_from_a_recorded_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from devstack import bench, cost

    recorded = tmp_path / "latest.json"
    recorded.write_text(json.dumps({"sizes": _counted_rows()}))
    assert bench.main(["--cost", str(recorded)]) == 0
    printed = capfd.readouterr().out
    assert "\n".join(cost.table()) in printed
    assert f"from the copy's requests in {recorded}" in printed


def test_bench_imports_none_of_the_functions_code_before_the_functions_environment() -> None:
    # The callbacks run in-process inside the function's environment: a module of kie2s3 imported
    # earlier (by devstack.bench's own imports) would build Powertools' logger and metrics outside
    # it (no namespace: the first callback fails).
    probe = "import sys, devstack.bench; print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'kie2s3')))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{ROOT / 'src/handler'}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip() == "[]"


def test_server_meter_gives_each_servers_cpu_over_a_copys_own_clock() -> None:
    # A busy process stands for moto; this process, idle but for the meter, for the emulator.
    from devstack.bench import ServerMeter

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with ServerMeter(busy.pid, interval=0.01) as meter:
            time.sleep(0.2)
            start = time.perf_counter()
            time.sleep(0.5)
            measured = meter.between(start, 0.5)
            assert meter.between(time.perf_counter() + 60, 1.0) == {}  # a span the meter has not covered
    finally:
        busy.kill()
        busy.wait()
    assert 0.05 <= measured["moto_cpu_seconds"] <= 0.6
    assert measured["emulator_cpu_seconds"] < 0.05  # the meter's own thread is not counted
    assert measured["cfs_throttled_periods"] <= measured["cfs_periods"]
