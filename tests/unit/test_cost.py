"""The cost estimate's arithmetic: prices of counted requests, modelled durations, the copy's profile."""

import pytest
from devstack import cost
from devstack.cost import COPY_PROFILE, CopyProfile, Invocation, billed, estimate
from devstack.template import load_template
from hypothesis import given
from hypothesis import strategies as st
from tests import docs

MIB = 1024**2


def test_price_of_units_is_its_list_price_pro_rata() -> None:
    assert cost.Price(0.005, 1_000, "PUT", "page").of(3_000) == pytest.approx(0.015)


@pytest.mark.parametrize(
    ("label", "bill"),
    [
        ("s3 UploadPart", ("s3_put", 1)),
        ("s3 PutObjectTagging", ("s3_put", 1)),
        ("s3 GetObject", ("s3_get", 1)),
        ("dynamodb PutItem (idempotency)", ("dynamodb_write_unit", 1)),
        # The file's item, its source marker, the check of its task's fence: 2 units each.
        ("dynamodb TransactWriteItems (ledger)", ("dynamodb_write_unit", 6)),
        ("dynamodb TransactWriteItems (idempotency, ledger)", ("dynamodb_write_unit", 4)),
        ("dynamodb Query (ledger)", ("dynamodb_read_unit", 1)),
        ("sqs SendMessageBatch", ("sqs_request", 1)),
        ("secrets-manager GetSecretValue", ("secrets_call", 1)),
        ("kie.ai download-url", ("kie_call", 1)),
        ("source GET Range", None),  # data into AWS is free
        ("eventbridge PutEvents", None),  # EventBridge bills the events, counted apart
    ],
)
def test_billed_prices_each_counted_request(label: str, bill: tuple[str, int] | None) -> None:
    assert billed(label) == bill


@pytest.mark.parametrize("label", ["dynamodb Scan (ledger)", "lambda Invoke"])
def test_billed_refuses_a_request_it_has_no_price_for(label: str) -> None:
    with pytest.raises(ValueError, match="no"):
        billed(label)


def test_invocation_duration_is_round_trips_plus_bytes_at_75_mb_per_second() -> None:
    invocation = Invocation("copy", 1024, "sqs", {}, sequential=5, bytes_moved=150 * cost.MB)
    assert invocation.seconds() == pytest.approx(5 * 0.02 + 2.0)


def test_estimate_adds_every_bill_of_an_invocation_for_each_file() -> None:
    invocation = Invocation(
        "copy",
        2048,
        "sqs",
        {"s3 PutObject": 2, "dynamodb UpdateItem (ledger)": 1, "source GET": 1},
        sequential=0,
        bytes_moved=75 * cost.MB,
        events=3,
    )
    got = estimate([invocation], size=75 * cost.MB, files=1_000_000).usd
    assert got == pytest.approx(
        {
            "lambda_request": 0.20,
            "lambda_gb_second": 2 * 1_000_000 * 0.0000133334,  # 2 GB for 1 s, a million times
            "xray_trace": 5.00,
            "log_gb": 1_000_000 * 2_000 / 1e9 * 0.50,
            "eventbridge_event": 3.00,
            "sqs_request": 2 * 0.40,  # the event source mapping's receive and delete
            "s3_put": 2_000 * 0.005,
            "dynamodb_write_unit": 0.625,
        }
    )


def test_storage_per_month_is_the_files_bytes_at_the_standard_price() -> None:
    assert estimate([], size=200 * cost.MB, files=1_000).storage_per_month == pytest.approx(200 * 0.023)


@pytest.mark.parametrize(("size", "requests"), [(1 * MIB, 6), (64 * MIB, 23), (1024 * MIB, 263)])
def test_copy_profile_counts_the_requests_the_bench_counted(size: int, requests: int) -> None:
    # docs/benchmarks.md: 6 requests at 1 MiB, 23 at 64 MiB, 263 at 1 GiB (8 MiB parts).
    assert sum(COPY_PROFILE.requests(size).values()) == requests


@given(st.integers(2, 2_000), st.integers(1, 5 * 1024**3))
def test_copy_profile_from_a_counted_multipart_copy_predicts_every_size(parts: int, size: int) -> None:
    counted = COPY_PROFILE.requests(parts * cost.COPY_PART_BYTES)
    derived = CopyProfile.from_counts(COPY_PROFILE.single, counted, parts)
    assert derived.requests(size) == COPY_PROFILE.requests(size)


def test_memory_of_reads_the_template() -> None:
    template = load_template()
    assert cost.memory_of(template, "CopyWorkerFunction") == 1024
    assert cost.memory_of(template, "ApiFunction") == 512


def test_copy_profile_parts_are_the_copys() -> None:
    from kie2s3.logic.services import DEFAULT_SHAPE

    assert DEFAULT_SHAPE.part_bytes == cost.COPY_PART_BYTES


def test_upload_fileobj_path_sends_boto3s_default_parts() -> None:
    ((small,), (large,)) = (
        cost.upload_fileobj_path(2 * cost.MB, 1024),
        cost.upload_fileobj_path(200 * cost.MB, 1024),
    )
    assert small.requests == {"source GET": 1, "s3 PutObject": 1}
    assert large.requests["s3 UploadPart"] == 24  # 200 MB in 8 MiB parts


def test_table_puts_kie2s3_beside_upload_fileobj_for_each_size() -> None:
    memory = {"ApiFunction": 512, "CopyWorkerFunction": 1024, "EventsFunction": 256}
    rows = cost.table(sizes=(2 * cost.MB,), memory=memory)[2:]
    assert [row.split(" | ")[:2] for row in rows] == [["| 2 MB", "kie2s3"], ["| 2 MB", "upload_fileobj"]]
    kie2s3 = estimate(cost.kie2s3_path(2 * cost.MB, memory), 2 * cost.MB)
    assert f"**${kie2s3.total:.4f}**" in rows[0]


def test_cost_docs_table_is_the_models() -> None:
    assert "\n".join(cost.table()) in (docs.ROOT / "docs" / "cost.md").read_text()
