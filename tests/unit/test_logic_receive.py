"""receive_callback over the in-memory fakes: authentication, the raw body, families, outcomes, file
identity, the cap, takedown and the copy mode, each without a server."""

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from devstack.callbacks import market_body
from tests.callback_requests import (
    HMAC_KEY,
    NOW,
    TOKEN,
    TOKEN_MODE,
    TOKEN_SECRET,
    callback,
    result_urls,
    sample,
    serve,
    signature_headers,
    signed,
)
from tests.fakes import SETTINGS_ENV, Fakes, make_fakes

from kie2s3.errors import AuthenticationError, BadRequestError
from kie2s3.families import task_id_of
from kie2s3.families.base import TASK_ID_FIELDS
from kie2s3.logic.receive import MAX_AUTH_HEADER_CHARS, receive_callback
from kie2s3.models import MAX_URLS_PER_REQUEST, Outcome
from kie2s3.ports import OPEN_TASK, SecretVersions
from kie2s3.sources import canonical_url

TASK = "7c1e0f3ab2d94c55a1e6f0b9d2c4a871"
HMAC_SECRET = SETTINGS_ENV["KIE_WEBHOOK_HMAC_SECRET"]
DAY = 86_400.0


class SecretsManager:
    """Secrets Manager behind Powertools' cache, as receive reads it (Services.secret_versions):
    `put` makes a new AWSCURRENT at a given time; a cached read stays until a refresh is asked for."""

    def __init__(self) -> None:
        self.held: dict[str, SecretVersions] = {}
        self.cache: dict[str, SecretVersions] = {}
        self.reads: list[str] = []
        self.clock = NOW  # when the next read happens

    def put(self, secret_id: str, value: str, *, at: float) -> None:
        old = self.held.get(secret_id)
        self.held[secret_id] = SecretVersions(
            current=value, previous=old.current if old else None, rotated_at=at, fetched_at=0.0
        )

    def __call__(self, secret_id: str, refresh: bool) -> SecretVersions:
        if refresh or secret_id not in self.cache:
            self.reads.append(secret_id)
            self.cache[secret_id] = dataclasses.replace(self.held[secret_id], fetched_at=self.clock)
        return self.cache[secret_id]


def _fakes(env: dict[str, str] | None = None, *, inline: bool = False) -> tuple[Fakes, SecretsManager]:
    fakes = make_fakes(env=env, inline=inline)
    manager = SecretsManager()
    manager.put(HMAC_SECRET, HMAC_KEY, at=NOW - 30 * DAY)
    manager.put(TOKEN_SECRET, TOKEN, at=NOW - 30 * DAY)
    fakes.with_(secret_versions=manager)
    return fakes, manager


@pytest.fixture
def fakes() -> Fakes:
    return _fakes()[0]


def _nothing_kept(fakes: Fakes) -> None:
    assert fakes.store.objects == {}
    assert fakes.ledger.tasks == {}
    assert fakes.ledger.files == {}
    assert fakes.queue.sent == []


def _market(task_id: str = TASK, *suffixes: str) -> dict[str, Any]:
    return market_body(task_id, result_urls(task_id, *(suffixes or (".png",))))


# -- authentication: HMAC ---------------------------------------------------------------------------


def test_receive_signed_callback_archives_the_raw_body_before_recording(fakes: Fakes) -> None:
    raw = json.dumps(_market(TASK, ".png", ".mp4"), indent=3).encode()  # bytes no re-encoding gives back

    doc = receive_callback(fakes.services, signed(raw, query={"family": "market"}))

    key = f"kie/{TASK}/callbacks/{int(NOW * 1000)}-{hashlib.sha256(raw).hexdigest()[:16]}.json"
    assert fakes.store.get_raw(key) == (raw, "market")
    assert fakes.store.objects[key].content_type == "application/json"
    assert fakes.trips.log.index(("s3", "PutObject")) < fakes.trips.log.index(("ledger", "UpdateItem"))
    assert (doc.task_id, doc.family, doc.state) == (TASK, "market", "pending")


@pytest.mark.parametrize(
    "tamper",
    [
        "missing",
        "timestamp-only",
        "signature-only",
        "wrong-key",
        "other-task",
        "stale",
        "future",
        "millis",
        "signed-body",
    ],
)
def test_receive_bad_signature_is_refused_and_keeps_nothing(fakes: Fakes, tamper: str) -> None:
    good = signature_headers(TASK)
    headers = {
        "missing": {},
        "timestamp-only": {"x-webhook-timestamp": good["x-webhook-timestamp"]},
        "signature-only": {"x-webhook-signature": good["x-webhook-signature"]},
        "wrong-key": signature_headers(TASK, key="not-the-key"),
        "other-task": signature_headers("another0task"),
        "stale": signature_headers(TASK, timestamp=NOW - 301),
        "future": signature_headers(TASK, timestamp=NOW + 301),
        "millis": {**good, "x-webhook-timestamp": str(int(NOW * 1000))},
        "signed-body": {**good, "x-webhook-signature": "dGhlIGJvZHkgaXMgbm90IHNpZ25lZA=="},
    }[tamper]

    with pytest.raises(AuthenticationError):
        receive_callback(fakes.services, callback(_market(), headers=headers))

    _nothing_kept(fakes)


@pytest.mark.parametrize("skew", [-300, 300])
def test_receive_timestamp_at_the_tolerance_is_accepted_both_ways(fakes: Fakes, skew: int) -> None:
    request = callback(_market(), headers=signature_headers(TASK, timestamp=NOW + skew))
    assert receive_callback(fakes.services, request).state == "pending"


def test_receive_tolerance_comes_from_the_settings() -> None:
    fakes, _ = _fakes({"WEBHOOK_TOLERANCE_SECONDS": "10"})
    with pytest.raises(AuthenticationError, match="outside the allowed window"):
        receive_callback(
            fakes.services, callback(_market(), headers=signature_headers(TASK, timestamp=NOW - 11))
        )


@pytest.mark.parametrize("header", ["x-webhook-timestamp", "x-webhook-signature"])
def test_receive_lone_surrogate_in_an_auth_header_is_refused(fakes: Fakes, header: str) -> None:
    good = signature_headers(TASK)
    headers = {**good, header: good[header][:-1] + "\ud800"}
    with pytest.raises(AuthenticationError):
        receive_callback(fakes.services, callback(_market(), headers=headers))
    _nothing_kept(fakes)


@pytest.mark.parametrize("header", ["x-webhook-timestamp", "x-webhook-signature"])
def test_receive_absurdly_long_auth_header_is_refused(fakes: Fakes, header: str) -> None:
    headers = {**signature_headers(TASK), header: "1" * (MAX_AUTH_HEADER_CHARS + 1)}
    with pytest.raises(AuthenticationError, match="longer than"):
        receive_callback(fakes.services, callback(_market(), headers=headers))
    _nothing_kept(fakes)


# Where families keep the task id they sign, and a sample of each (families differ in authentication
# only there: every callback is verified before its family is detected).
_ID_SAMPLES = {
    "data.taskId": "callback-market-success",
    "data.task_id": "callback-suno-complete",
    "taskId": "callback-runway-aleph-success",
    "task_id": "callback-suno-midi",
}


def test_receive_id_samples_cover_every_place_a_task_id_is_read() -> None:
    assert sorted(_ID_SAMPLES) == sorted(f"{c}.{n}" if c else n for c, n in TASK_ID_FIELDS)
    for field, name in _ID_SAMPLES.items():
        container, _, key = field.rpartition(".")
        body = sample(name)
        assert (body[container] if container else body)[key] == task_id_of(body)


@pytest.mark.parametrize("field", sorted(_ID_SAMPLES))
def test_receive_signature_covers_the_task_id_wherever_the_family_keeps_it(fakes: Fakes, field: str) -> None:
    body = sample(_ID_SAMPLES[field])
    task_id = task_id_of(body)
    with pytest.raises(AuthenticationError):
        receive_callback(fakes.services, callback(body, headers=signature_headers("another0task")))
    _nothing_kept(fakes)

    doc = receive_callback(fakes.services, callback(body, headers=signature_headers(task_id)))

    assert doc.task_id == task_id
    assert fakes.store.raw_keys(f"kie/{task_id}/callbacks/")


# -- authentication: rotation ------------------------------------------------------------------------


def _rotated(
    env: dict[str, str] | None = None, *, rotated_ago: float = 600.0
) -> tuple[Fakes, SecretsManager]:
    """The HMAC key rotated `rotated_ago` seconds before NOW: key-1 (AWSPREVIOUS) -> key-2 (AWSCURRENT)."""
    fakes, manager = _fakes(env)
    manager.put(HMAC_SECRET, "key-1", at=NOW - 60 * DAY)
    manager.put(HMAC_SECRET, "key-2", at=NOW - rotated_ago)
    return fakes, manager


def _signed_with(fakes: Fakes, key: str, task_id: str = TASK) -> str:
    request = callback(_market(task_id), headers=signature_headers(task_id, key=key))
    try:
        receive_callback(fakes.services, request)
    except AuthenticationError:
        return "refused"
    return "accepted"


def test_receive_rotation_accepts_the_previous_key_within_the_window() -> None:
    fakes, _ = _rotated({"SECRET_ROTATION_WINDOW_SECONDS": "601"})
    assert [_signed_with(fakes, key, f"task{n}") for n, key in enumerate(["key-2", "key-1", "key-0"])] == [
        "accepted",
        "accepted",
        "refused",  # never a key older than the previous one
    ]


def test_receive_rotation_refuses_the_previous_key_after_the_window() -> None:
    fakes, _ = _rotated({"SECRET_ROTATION_WINDOW_SECONDS": "600"})
    assert [_signed_with(fakes, key, f"task{n}") for n, key in enumerate(["key-1", "key-2"])] == [
        "refused",
        "accepted",
    ]


def test_receive_rotation_new_key_is_read_again_though_the_old_one_is_cached() -> None:
    fakes, manager = _fakes()
    manager.clock = NOW - 60  # the cache was filled a minute ago, before the rotation
    assert _signed_with(fakes, HMAC_KEY, "task1") == "accepted"
    manager.put(HMAC_SECRET, "key-2", at=NOW - 5)

    assert _signed_with(fakes, "key-2", "task2") == "accepted"

    assert manager.reads == [HMAC_SECRET, HMAC_SECRET]


def test_receive_bad_signatures_read_the_secret_again_at_most_every_30_seconds() -> None:
    fakes, manager = _fakes()
    manager.clock = NOW - 29
    assert _signed_with(fakes, HMAC_KEY, "task1") == "accepted"

    assert [_signed_with(fakes, "forged", f"task{n}") for n in range(2, 5)] == ["refused"] * 3

    assert manager.reads == [HMAC_SECRET]


# -- authentication: token mode, fail closed ---------------------------------------------------------


def test_receive_token_mode_accepts_the_token() -> None:
    fakes, _ = _fakes(TOKEN_MODE)
    doc = receive_callback(fakes.services, callback(_market(), query={"token": TOKEN}))
    assert doc.state == "pending"
    assert fakes.store.raw_keys(f"kie/{TASK}/callbacks/")


@pytest.mark.parametrize(
    "query",
    [{}, {"token": ""}, {"token": "nope"}, {"token": TOKEN + "x"}],
    ids=["none", "blank", "wrong", "longer"],
)
def test_receive_token_mode_refuses_a_missing_or_wrong_token(query: dict[str, str]) -> None:
    fakes, _ = _fakes(TOKEN_MODE)
    with pytest.raises(AuthenticationError, match="callback token"):
        receive_callback(fakes.services, callback(_market(), query=query))
    _nothing_kept(fakes)


def test_receive_token_mode_a_valid_signature_is_no_token() -> None:
    fakes, _ = _fakes(TOKEN_MODE)
    with pytest.raises(AuthenticationError):
        receive_callback(fakes.services, signed(_market()))
    _nothing_kept(fakes)


def test_receive_token_mode_accepts_the_previous_token_within_the_window() -> None:
    fakes, manager = _fakes({**TOKEN_MODE, "SECRET_ROTATION_WINDOW_SECONDS": "3600"})
    manager.put(TOKEN_SECRET, "token-2", at=NOW - 60)
    for n, token in enumerate([TOKEN, "token-2"]):
        receive_callback(fakes.services, callback(_market(f"task{n}"), query={"token": token}))
    assert sorted(fakes.ledger.tasks) == ["task0", "task1"]


@pytest.mark.parametrize("hmac", ["", "none"])
def test_receive_without_hmac_or_token_refuses_every_callback(hmac: str) -> None:
    fakes, _ = _fakes({"KIE_WEBHOOK_HMAC_SECRET": hmac})
    request = callback(_market(), headers=signature_headers(TASK), query={"token": TOKEN})
    with pytest.raises(AuthenticationError, match="not configured"):
        receive_callback(fakes.services, request)
    _nothing_kept(fakes)


# -- bad bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"code": 200, "data": {}}', "no task id"),
        (b'{"data": {"taskId": " "}}', "not a task id"),
        (b'{"taskId": "aaa", "data": {"taskId": "bbb"}}', "more than one task id"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
    ids=["text", "binary", "array", "no-id", "blank-id", "two-ids", "deep"],
)
def test_receive_bad_body_is_400_before_anything_is_kept(fakes: Fakes, raw: bytes, reason: str) -> None:
    with pytest.raises(BadRequestError, match=reason):
        receive_callback(fakes.services, callback(raw, headers=signature_headers(TASK)))
    _nothing_kept(fakes)


# -- families, outcomes ------------------------------------------------------------------------------


def test_receive_family_hint_picks_the_family_the_shape_fits(fakes: Fakes) -> None:
    body = sample("callback-veo4k-success-hinted")
    task_id = task_id_of(body)

    hinted = receive_callback(fakes.services, signed(body, query={"family": "veo4k"}))

    assert hinted.family == "veo4k"
    assert fakes.ledger.tasks[task_id].family == "veo4k"
    assert [job.family for job in fakes.queue.sent] == ["veo4k"]


def test_receive_without_a_hint_detects_the_family_by_shape(fakes: Fakes) -> None:
    assert receive_callback(fakes.services, signed(sample("callback-veo4k-success-hinted"))).family == "veo"


def test_receive_hint_the_body_does_not_fit_is_ignored(fakes: Fakes) -> None:
    assert receive_callback(fakes.services, signed(_market(), query={"family": "suno"})).family == "market"


def test_receive_unknown_shape_is_archived_ignored_and_left_for_replay(fakes: Fakes) -> None:
    body = sample("callback-unrecognised")
    task_id = task_id_of(body)

    doc = receive_callback(fakes.services, signed(body, query={"family": "market"}))

    assert (doc.family, doc.state, doc.files) == ("unknown", "ignored", [])
    assert doc.reason is not None
    assert "archived for replay" in doc.reason
    (raw_key,) = fakes.store.raw_keys(f"kie/{task_id}/callbacks/")
    assert fakes.store.get_raw(raw_key)[1] == "market"  # the hint is kept with the body for the replay
    assert fakes.ledger.tasks[task_id].outcome is Outcome.UNRECOGNISED
    assert [i["task_id"] for i in fakes.ledger.open_items(OPEN_TASK, "9999")] == [task_id]  # the reconciler's
    assert fakes.queue.sent == []


def test_receive_not_final_stage_is_pending_with_its_reason_and_copies_nothing(fakes: Fakes) -> None:
    body = sample("callback-suno-text")

    doc = receive_callback(fakes.services, signed(body))

    assert (doc.family, doc.state, doc.files) == ("suno", "pending", [])
    assert doc.reason == "waiting for the complete stage (text)"
    assert fakes.ledger.tasks[task_id_of(body)].outcome is Outcome.NOT_FINAL
    assert fakes.queue.sent == []


def test_receive_late_stage_after_the_final_callback_leaves_the_task_final(fakes: Fakes) -> None:
    # kie.ai's callbacks come out of order: Suno's `text` after its `error` (the soak, seed 1).
    error = sample("callback-suno-error")
    late = json.loads(
        json.dumps(sample("callback-suno-text")).replace(
            task_id_of(sample("callback-suno-text")), task_id_of(error)
        )
    )
    receive_callback(fakes.services, signed(error))

    doc = receive_callback(fakes.services, signed(late))

    assert fakes.ledger.tasks[task_id_of(error)].outcome is Outcome.FAILED
    assert task_id_of(error) not in fakes.ledger.open_tasks
    assert doc.state == "failed"


def test_receive_failed_task_is_failed_with_kie_reason_and_copies_nothing(fakes: Fakes) -> None:
    body = sample("callback-market-failure")

    doc = receive_callback(fakes.services, signed(body))

    assert (doc.state, doc.reason, doc.files) == ("failed", "Internal server error (failCode 500)", [])
    assert fakes.store.raw_keys(f"kie/{task_id_of(body)}/callbacks/")
    assert fakes.queue.sent == []
    assert fakes.source.requests == {}


def test_receive_result_without_files_is_ignored(fakes: Fakes) -> None:
    doc = receive_callback(fakes.services, signed(sample("callback-market-text-result")))
    assert (doc.state, doc.reason, doc.files) == ("ignored", "result has no files: text result", [])
    assert fakes.queue.sent == []


# -- file identity, the cap -------------------------------------------------------------------------


def _sources(fakes: Fakes, task_id: str = TASK) -> list[tuple[int, str]]:
    found = fakes.ledger.get(task_id)
    assert found is not None
    return [(f.index, f.source) for f in found[1]]


def test_receive_same_source_twice_in_one_callback_is_one_file(fakes: Fakes) -> None:
    (url,) = result_urls(TASK, ".png")
    receive_callback(fakes.services, signed(market_body(TASK, [url, url])))
    assert _sources(fakes) == [(0, url)]
    assert [(j.index, j.source) for j in fakes.queue.sent] == [(0, url)]


def test_receive_spellings_of_one_source_are_one_file(fakes: Fakes) -> None:
    spellings = [
        "https://tempfile.aiquickdraw.com/p/a b.png",
        "https://TempFile.AIQuickDraw.com/p/a%20b.png",
        "HTTPS://tempfile.aiquickdraw.com/p/a b.png?sig=1",
    ]
    receive_callback(fakes.services, signed(market_body(TASK, spellings)))
    assert _sources(fakes) == [(0, "https://tempfile.aiquickdraw.com/p/a%20b.png")]
    assert [j.source for j in fakes.queue.sent] == [spellings[0]]  # the full URL as first given


def test_receive_redelivery_in_another_order_plans_nothing_again(fakes: Fakes) -> None:
    urls = result_urls(TASK, ".png", ".mp4", ".mp3")
    receive_callback(fakes.services, signed(market_body(TASK, urls)))
    first = _sources(fakes)

    receive_callback(fakes.services, signed(market_body(TASK, urls[::-1])))
    receive_callback(fakes.services, signed(market_body(TASK, urls[1:2])))

    assert _sources(fakes) == first == [(n, canonical_url(u)) for n, u in enumerate(urls)]
    assert [j.index for j in fakes.queue.sent] == [0, 1, 2]  # each job sent once, by the first delivery


def test_receive_new_source_of_a_known_task_gets_the_next_index_and_only_its_job(fakes: Fakes) -> None:
    old, new = result_urls(TASK, ".png", ".mp4")
    receive_callback(fakes.services, signed(market_body(TASK, [old])))
    fakes.queue.sent.clear()

    receive_callback(fakes.services, signed(market_body(TASK, [new, old])))

    assert _sources(fakes) == [(0, old), (1, new)]
    assert [(j.index, j.source, j.key) for j in fakes.queue.sent] == [(1, new, f"kie/{TASK}/01.mp4")]


def test_receive_urls_past_the_cap_are_counted_not_planned(fakes: Fakes) -> None:
    urls = result_urls(TASK, *[".png"] * (MAX_URLS_PER_REQUEST + 10))

    doc = receive_callback(fakes.services, signed(market_body(TASK, urls)))

    assert [f.source for f in doc.files] == urls[:MAX_URLS_PER_REQUEST]
    assert fakes.ledger.tasks[TASK].files_not_planned == 10
    assert doc.reason == f"10 files past the first {MAX_URLS_PER_REQUEST} of one callback were not archived"
    assert len(fakes.queue.sent) == MAX_URLS_PER_REQUEST


def test_receive_refused_source_is_recorded_failed_and_never_fetched(fakes: Fakes) -> None:
    good, evil = [*result_urls(TASK, ".png"), "https://evil.example.com/x.png"]

    doc = receive_callback(fakes.services, signed(market_body(TASK, [good, evil])))

    assert [(f.source, f.state) for f in doc.files] == [(good, "pending"), (evil, "failed")]
    assert doc.files[1].error is not None
    assert "evil.example.com" in doc.files[1].error
    assert [j.source for j in fakes.queue.sent] == [good]


# -- takedown, copy mode ---------------------------------------------------------------------------------


def test_receive_callback_for_a_task_taken_down_keeps_nothing(fakes: Fakes) -> None:
    fakes.ledger.seed_task(TASK)
    fakes.ledger.mark_taken_down(TASK, [f"kie/{TASK}/00.png"])
    before = fakes.ledger.tasks[TASK]

    doc = receive_callback(fakes.services, signed(_market(TASK, ".png")))

    assert (doc.state, doc.files) == ("ignored", [])
    assert fakes.store.objects == {}  # not even the raw body
    assert fakes.ledger.tasks[TASK] == before
    assert fakes.queue.sent == []


def test_receive_queue_mode_sends_one_job_per_file_and_downloads_nothing(fakes: Fakes) -> None:
    urls = result_urls(TASK, ".png", ".mp4")
    serve(fakes, urls)

    doc = receive_callback(fakes.services, signed(market_body(TASK, urls, model="veo3")))

    assert [(j.index, j.source, j.key, j.family, j.model) for j in fakes.queue.sent] == [
        (0, urls[0], f"kie/{TASK}/00.png", "market", "veo3"),
        (1, urls[1], f"kie/{TASK}/01.mp4", "market", "veo3"),
    ]
    assert (doc.state, [f.state for f in doc.files]) == ("pending", ["pending", "pending"])
    assert fakes.source.requests == {}
    assert fakes.kie.download_url_calls == {}
    # The answer goes back to kie.ai, which reads none of it: the ledger's document, no other read.
    assert fakes.trips.of("idempotency") == []


def test_receive_inline_mode_copies_in_the_request() -> None:
    fakes, _ = _fakes(inline=True)
    urls = result_urls(TASK, ".png", ".mp4")
    served = serve(fakes, urls)

    doc = receive_callback(fakes.services, signed(market_body(TASK, urls)))

    assert [f.url for f in doc.files] == [None, None]  # the answer goes back to kie.ai: no links
    assert fakes.services.queue is None
    assert fakes.queue.sent == []
    assert (doc.state, [f.state for f in doc.files]) == ("copied", ["copied", "copied"])
    for file, url in zip(doc.files, urls, strict=True):
        assert file.key is not None
        assert fakes.store.objects[file.key].body == served[url]
        assert file.sha256 == hashlib.sha256(served[url]).hexdigest()
