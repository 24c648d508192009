"""The bench's round-trip arithmetic: waves of overlapping requests, the bookkeeping's share, segments."""

import pytest
from devstack.roundtrips import (
    RoundTrip,
    describe_wave,
    exclusive_seconds,
    segments,
    summarize,
    union,
    waves,
)


def _trip(label: str, start: float, end: float) -> RoundTrip:
    service, operation = label.split(" ", 1)
    return RoundTrip(service, operation, start, end)


def _labels(grouped: list[list[RoundTrip]]) -> list[list[str]]:
    return [[t.label for t in wave] for wave in grouped]


def test_waves_of_requests_one_after_another_are_one_each() -> None:
    trips = [
        _trip("kie.ai download-url", 0.0, 1.0),
        _trip("source GET", 1.5, 2.0),
        _trip("s3 PutObject", 2.1, 3.0),
    ]
    assert _labels(waves(trips)) == [["kie.ai download-url"], ["source GET"], ["s3 PutObject"]]


def test_waves_join_requests_that_overlap_in_time() -> None:
    trips = [
        _trip("dynamodb PutItem (ledger)", 0.0, 1.0),
        _trip("dynamodb PutItem (idempotency)", 0.2, 1.2),
        _trip("kie.ai download-url", 1.3, 1.4),
    ]
    assert _labels(waves(trips)) == [
        ["dynamodb PutItem (ledger)", "dynamodb PutItem (idempotency)"],
        ["kie.ai download-url"],
    ]


def test_waves_chain_overlaps_even_when_the_first_and_last_requests_do_not_meet() -> None:
    # a overlaps b, b overlaps c, a ends before c starts: still one wave, b holds the path.
    trips = [
        _trip("s3 UploadPart", 0.0, 1.0),
        _trip("source GET", 0.5, 2.0),
        _trip("s3 UploadPart", 1.5, 2.5),
    ]
    assert len(waves(trips)) == 1


def test_waves_count_a_request_inside_a_longer_one_once() -> None:
    trips = [_trip("source GET", 0, 5), _trip("s3 UploadPart", 1, 2), _trip("s3 UploadPart", 3, 4)]
    assert _labels(waves(trips)) == [["source GET", "s3 UploadPart", "s3 UploadPart"]]


def test_waves_do_not_join_a_request_that_starts_as_the_last_one_ends() -> None:
    trips = [_trip("source GET", 0.0, 1.0), _trip("s3 PutObject", 1.0, 2.0)]
    assert len(waves(trips)) == 2


def test_waves_sort_requests_by_start_whatever_order_they_were_recorded_in() -> None:
    late, early, overlapping = (2.0, 3.0), (0.0, 0.5), (0.4, 1.0)
    trips = [
        _trip("s3 PutObject", *late),
        _trip("kie.ai download-url", *early),
        _trip("source GET", *overlapping),
    ]
    assert _labels(waves(trips)) == [["kie.ai download-url", "source GET"], ["s3 PutObject"]]


def test_waves_of_nothing_are_none() -> None:
    assert waves([]) == []


def test_union_merges_overlapping_intervals_in_order() -> None:
    assert union([(3.0, 4.0), (0.0, 1.0), (0.5, 2.0)]) == [(0.0, 2.0), (3.0, 4.0)]


def test_exclusive_seconds_count_only_what_no_other_service_overlaps() -> None:
    trips = [
        _trip("dynamodb PutItem (ledger)", 0.0, 1.0),
        _trip("dynamodb PutItem (idempotency)", 0.5, 1.5),  # beside the ledger's: counted once
        _trip("s3 PutObject", 2.0, 3.0),
        _trip("dynamodb UpdateItem (ledger)", 2.5, 3.5),  # half of it hidden behind the PutObject
    ]
    assert exclusive_seconds(trips, "dynamodb") == pytest.approx(1.5 + 0.5)
    assert exclusive_seconds(trips, "s3") == pytest.approx(0.5)


def test_exclusive_seconds_of_a_service_without_requests_are_zero() -> None:
    assert exclusive_seconds([_trip("s3 PutObject", 0.0, 1.0)], "dynamodb") == 0.0


def test_segments_split_requests_by_the_invocation_they_started_in() -> None:
    trips = [
        _trip("sqs ReceiveMessage", 0.5, 0.6),  # before the first invocation: nobody's
        _trip("dynamodb PutItem (ledger)", 1.0, 1.1),
        _trip("s3 PutObject", 1.9, 2.2),  # started in the first, ended in the second's time
        _trip("kie.ai download-url", 2.0, 2.1),
    ]
    first, second = segments(trips, [1.0, 2.0])
    assert [t.label for t in first] == ["dynamodb PutItem (ledger)", "s3 PutObject"]
    assert [t.label for t in second] == ["kie.ai download-url"]


def test_summarize_counts_requests_waves_and_the_bookkeeping() -> None:
    trips = [
        _trip("dynamodb PutItem (ledger)", 0.000, 0.010),
        _trip("dynamodb PutItem (idempotency)", 0.002, 0.012),
        _trip("kie.ai download-url", 0.013, 0.015),
        _trip("source GET Range", 0.016, 0.020),
        _trip("s3 PutObject", 0.021, 0.030),
        _trip("dynamodb UpdateItem (ledger)", 0.031, 0.035),
        _trip("dynamodb UpdateItem (idempotency)", 0.031, 0.036),
    ]
    summary = summarize(trips)
    assert summary["requests"] == 7
    assert summary["sequential"] == 5
    assert summary["by_operation"] == {
        "dynamodb PutItem (idempotency)": 1,
        "dynamodb PutItem (ledger)": 1,
        "dynamodb UpdateItem (idempotency)": 1,
        "dynamodb UpdateItem (ledger)": 1,
        "kie.ai download-url": 1,
        "s3 PutObject": 1,
        "source GET Range": 1,
    }
    assert [describe_wave(w) for w in summary["waves"]] == [
        "dynamodb PutItem (idempotency) + dynamodb PutItem (ledger)",
        "kie.ai download-url",
        "source GET Range",
        "s3 PutObject",
        "dynamodb UpdateItem (idempotency) + dynamodb UpdateItem (ledger)",
    ]
    assert [w["ms"] for w in summary["waves"]] == pytest.approx([12.0, 2.0, 4.0, 9.0, 5.0])
    assert summary["bookkeeping_requests"] == 4
    assert summary["bookkeeping_sequential"] == 2
    assert summary["bookkeeping_ms"] == pytest.approx(12.0 + 5.0)
    assert summary["bookkeeping_in_flight_ms"] == pytest.approx(10.0 + 10.0 + 4.0 + 5.0)


def test_describe_wave_names_repeated_operations_once_with_their_count() -> None:
    trips = [
        _trip("s3 UploadPart", 0.0, 1.0),
        _trip("source GET Range", 0.0, 1.0),
        _trip("s3 UploadPart", 0.5, 1.0),
    ]
    (wave,) = summarize(trips)["waves"]
    assert describe_wave(wave) == "s3 UploadPart x2 + source GET Range"


def test_round_trip_rows_are_relative_to_their_origin_and_read_back() -> None:
    trip = _trip("s3 PutObject", 10.25, 10.5)
    row = trip.row(origin=10.0)
    assert row == ["s3", "PutObject", 0.25, 0.5]
    assert RoundTrip.from_row(row) == _trip("s3 PutObject", 0.25, 0.5)
