"""Every family end to end: each sample in events/ through lambda_handler, checked against
the hand-written expectations in devstack/expected_files.py."""

import collections
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from devstack.callbacks import load_event, resign, serve_result_files
from devstack.expected_files import EXPECTED, RECORDS
from devstack.kie_emulator import sign
from devstack.lambda_runtime import function_environment, http_event, task_status_event
from devstack.stack import CALLBACK_TOKEN, WEBHOOK_HMAC_KEY, Stack
from tests.integration.conftest import archived_files, objects_under, send

from kie2s3.families import task_id_of
from kie2s3.families.base import TASK_ID_FIELDS
from kie2s3.models import Outcome
from kie2s3.sources import canonical_url

SAMPLES = sorted(EXPECTED)
STATE_OF = {
    "success": "copied",
    "no_files": "ignored",
    "failed": "failed",
    "not_final": "pending",
    "unrecognised": "ignored",
}
# One sample of each family.
FAMILY_SAMPLES = {
    e.family: name for name, e in sorted(EXPECTED.items(), reverse=True) if e.outcome != "unrecognised"
}


def _event(name: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    event = load_event(name)
    body = json.loads(event["body"])
    task_id = task_id_of(body)
    return event, body, task_id


def _task_id_field(name: str) -> str:
    """Where a sample's task id sits: `data.taskId`, `data.task_id`, `taskId` or `task_id`."""
    _, body, _ = _event(name)
    for container, field in TASK_ID_FIELDS:
        holder = body if container is None else body.get(container)
        if isinstance(holder, dict) and holder.get(field) is not None:
            return f"{container}.{field}" if container else field
    raise AssertionError(f"{name} holds no task id")


# Families differ in authentication only by where the signed task id sits in the body (every
# callback is verified before its family is detected): the first family's sample for each place.
AUTH_SAMPLES: dict[str, str] = {}
for _family, _name in sorted(FAMILY_SAMPLES.items()):
    AUTH_SAMPLES.setdefault(_task_id_field(_name), _name)


def _urls_in(value: object) -> Iterator[str]:
    """Every URL a body holds, those in JSON-in-a-string fields included (Market `param`, `promptJson`)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _urls_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls_in(item)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith(("https://", "http://")):
            yield text
        elif text[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                yield from _urls_in(json.loads(text))


def _inputs(name: str) -> list[str]:
    """The URLs of a sample that are not its results: `origin_url`, `source_*`, `stream_*`, `param`…"""
    results = {canonical_url(url) for url, _ in EXPECTED[name].files}
    _, body, _ = _event(name)
    return sorted({url for url in _urls_in(body) if canonical_url(url) not in results})


@pytest.mark.parametrize(
    ("name", "inputs"),
    [
        ("callback-suno-vocals-separate-vocal.json", ["https://tempfile.aiquickdraw.com/s/5c79"]),
        ("callback-suno-complete.json", ["/s/source_", "/stream/source_", "/stream/efea"]),
        ("callback-flux-kontext-success.json", ["origin"]),
    ],
)
def test_family_sample_inputs_are_found(name: str, inputs: list[str]) -> None:
    # The archive test below serves these and asserts they are never fetched: it must find them.
    found = _inputs(name)
    assert all(any(part in url for url in found) for part in inputs), found


@pytest.mark.parametrize("name", SAMPLES)
def test_family_sample_archives_exactly_its_files(inline_mode: Stack, name: str) -> None:
    expected = EXPECTED[name]
    event, _, task_id = _event(name)
    emulator = inline_mode.emulator
    served = serve_result_files(emulator, [url for url, _ in expected.files], size=40_000)
    # Inputs are served too, so that fetching one would succeed: only the request log can tell.
    inputs = serve_result_files(emulator, _inputs(name), size=1_000, seed=900)
    calls_before, gets_before = (
        collections.Counter(emulator.download_url_calls),
        collections.Counter(emulator.file_requests),
    )
    status, doc = send(resign(event, task_id, WEBHOOK_HMAC_KEY))
    assert status == 200
    assert doc["family"] == expected.family
    assert doc["state"] == STATE_OF[expected.outcome]
    # The status document shows each source in canonical form (a space is %20).
    assert [f["source"] for f in doc["files"]] == [canonical_url(url) for url, _ in expected.files]
    s3 = inline_mode.client("s3")
    for entry, (url, content_type) in zip(doc["files"], expected.files, strict=True):
        source = served[url]
        assert entry["state"] == "copied"
        assert f"/{task_id}/" in f"/{entry['key']}"
        stored = s3.get_object(Bucket=inline_mode.bucket, Key=entry["key"])
        assert stored["Body"].read() == source.read(0, source.size)
        assert stored["ContentType"] == entry["contentType"] == content_type
        assert inline_mode.emulator.download_url_calls[url] == 1
    assert sorted(archived_files(inline_mode, task_id)) == sorted(f["key"] for f in doc["files"])
    # download-url was asked for the results as the callback wrote them, and for nothing else.
    fetched = emulator.download_url_calls - calls_before
    assert set(fetched) <= {url for url, _ in expected.files}, fetched
    assert not {canonical_url(url) for url in fetched} & {canonical_url(url) for url in inputs}
    assert not {file.name for file in inputs.values()} & set(emulator.file_requests - gets_before)
    if expected.outcome != "success":
        assert archived_files(inline_mode, task_id) == {}
        assert doc["files"] == []


def test_authentication_samples_hold_the_task_id_in_every_place_task_id_of_reads() -> None:
    assert sorted(AUTH_SAMPLES) == sorted(f"{c}.{n}" if c else n for c, n in TASK_ID_FIELDS)


# Through the whole stack, the places the task id sits differ (each signature is over the task id read
# from its place) and one of each other tamper; every tamper of every place is a unit test of receive
# (tests/unit/test_logic_receive.py).
@pytest.mark.parametrize(
    ("field", "tamper"),
    [(field, "other-task") for field in sorted(AUTH_SAMPLES)]
    + [(sorted(AUTH_SAMPLES)[0], tamper) for tamper in ("missing", "wrong-key", "stale", "future")],
)
def test_family_callback_with_bad_signature_is_refused(queue_mode: Stack, field: str, tamper: str) -> None:
    event, _, task_id = _event(AUTH_SAMPLES[field])
    now = int(time.time())
    headers = {k: v for k, v in event["headers"].items() if not k.startswith("x-webhook-")}
    signed = {
        "missing": {},
        "wrong-key": sign("not-the-key", task_id, now),
        "stale": sign(WEBHOOK_HMAC_KEY, task_id, now - 400),
        "future": sign(WEBHOOK_HMAC_KEY, task_id, now + 400),
        "other-task": sign(WEBHOOK_HMAC_KEY, "another0task", now),
    }[tamper]
    archived_before = objects_under(queue_mode, f"kie/{task_id}/")
    status, answer = send({**event, "headers": {**headers, **{k.lower(): v for k, v in signed.items()}}})
    assert status == 401, answer
    assert objects_under(queue_mode, f"kie/{task_id}/") == archived_before  # nothing archived


def test_family_callback_token_fallback(stack: Stack) -> None:
    # The token does not depend on where the task id sits: one place (each is a unit test of receive).
    event, _, _ = _event(AUTH_SAMPLES[sorted(AUTH_SAMPLES)[0]])
    unsigned = {
        **event,
        "headers": {k: v for k, v in event["headers"].items() if not k.startswith("x-webhook-")},
    }
    env = {**stack.env, "KIE_WEBHOOK_HMAC_SECRET": "", "COPY_MODE": "queue"}
    with function_environment(env):
        good = send(
            {
                **unsigned,
                "queryStringParameters": {
                    **unsigned.get("queryStringParameters", {}),
                    "token": CALLBACK_TOKEN,
                },
            }
        )
        bad = send(
            {
                **unsigned,
                "queryStringParameters": {**unsigned.get("queryStringParameters", {}), "token": "nope"},
            }
        )
        none = send(unsigned)
    assert (good[0], bad[0], none[0]) == (200, 401, 401)


SUCCESS_RECORDS = [r for r in RECORDS if r[3] is Outcome.SUCCESS and r[4]]


@pytest.mark.parametrize(
    ("family", "data", "urls"),
    [(f, d, u) for f, _, d, _, u, _ in SUCCESS_RECORDS],
    ids=[f"{f}-{s}" for f, s, *_ in SUCCESS_RECORDS],
)
def test_family_copies_by_task_id_copy_what_record_info_lists(
    inline_mode: Stack, task_id: str, family: str, data: dict[str, Any], urls: list[str]
) -> None:
    # The record's URLs, moved to an allowed kie.ai host and made unique to this test.
    base = f"https://tempfile.aiquickdraw.com/rec/{task_id}/"
    record = json.loads(json.dumps(data).replace("https://h/", base))
    expected = [u.replace("https://h/", base) for u in urls]
    served = serve_result_files(inline_mode.emulator, expected, size=20_000)
    inline_mode.emulator.add_task(family, task_id, record)
    status, doc = send(http_event("POST", "/copies", body={"taskId": task_id, "family": family}))
    assert status == 200, doc
    assert doc["family"] == family
    assert doc["state"] == "copied"
    assert [f["source"] for f in doc["files"]] == [canonical_url(u) for u in expected]
    assert [f["sha256"] for f in doc["files"]] == [served[u].sha256_hex() for u in expected]


def test_suno_vocal_separation_copies_by_task_id_never_fetch_inputs(inline_mode: Stack, task_id: str) -> None:
    # get-vocal-separation-details: `originUrl` is the song separated (an input) and `originData[]`
    # upstream copies of the same stems; both served here, so that only the request log can tell.
    emulator = inline_mode.emulator
    stems = [f"https://file.aiquickdraw.com/s/{task_id}_{name}.mp3" for name in ("Vocals", "Instrumental")]
    origin = f"https://tempfile.aiquickdraw.com/s/{task_id}.mp3"
    upstream = [f"https://tempfile.aiquickdraw.com/up/{task_id}_{n}.mp3" for n in range(2)]
    served = serve_result_files(emulator, [*stems, origin, *upstream], size=12_000)
    emulator.add_task(
        "suno_vocal_separation",
        task_id,
        {
            "taskId": task_id,
            "musicId": "376c687e-d439-42c1-b1e4-bcb43b095ec2",
            "musicIndex": 0,
            "response": {
                "id": None,
                "originUrl": origin,
                "originData": [
                    {"duration": 245.6, "audio_url": upstream[0], "stem_type_group_name": "Vocals"},
                    {"duration": 245.6, "audio_url": upstream[1], "stem_type_group_name": "Instrumental"},
                ],
                "vocalUrl": stems[0],
                "instrumentalUrl": stems[1],
                "backingVocalsUrl": None,
                "drumsUrl": None,
                "pianoUrl": None,
            },
            "successFlag": "SUCCESS",
            "errorCode": None,
            "errorMessage": None,
        },
    )
    status, doc = send(
        http_event("POST", "/copies", body={"taskId": task_id, "family": "suno_vocal_separation"})
    )
    assert status == 200, doc
    assert (doc["family"], doc["state"]) == ("suno_vocal_separation", "copied")
    assert [(f["source"], f["sha256"]) for f in doc["files"]] == [(u, served[u].sha256_hex()) for u in stems]
    assert [emulator.download_url_calls[u] for u in (origin, *upstream)] == [0, 0, 0]
    assert [emulator.file_requests[served[u].name] for u in (origin, *upstream)] == [0, 0, 0]


@pytest.mark.parametrize(
    ("final", "state"),
    [("callback-suno-error.json", "failed"), ("callback-suno-lyrics.json", "ignored")],
)
@pytest.mark.parametrize("late", ["callback-suno-text.json", "callback-unrecognised.json"])
def test_a_late_stage_never_reopens_a_final_task(
    queue_mode: Stack, final: str, state: str, late: str
) -> None:
    # kie.ai's callbacks come out of order (the soak, seed 1): a Suno `text` stage, or a shape no
    # parser knows, after the task's final callback leaves the task as that callback ended it.
    task_id = f"late{time.time_ns()}"
    for name in (final, late):
        event, body, old_id = _event(name)
        rewritten = json.loads(json.dumps(body).replace(old_id, task_id))
        status, _ = send(resign({**event, "body": json.dumps(rewritten)}, task_id, WEBHOOK_HMAC_KEY))
        assert status == 200, name
    status, doc = send(task_status_event(task_id))
    assert (status, doc["state"]) == (200, state)
