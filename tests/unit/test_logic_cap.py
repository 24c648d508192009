"""The cap on one delivery's files counts distinct canonical sources, never list entries (issue #21,
defect 3): for callbacks and for `POST /copies` `urls`, over the in-memory fakes."""

import hashlib

import pytest
from devstack.callbacks import market_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from tests.callback_requests import result_urls, serve, signed
from tests.fakes import FILE_HOST, Fakes, make_fakes

from kie2s3.errors import BadRequestError
from kie2s3.logic.copies import request_copies
from kie2s3.logic.receive import receive_callback
from kie2s3.models import (
    MAX_URL_ENTRIES_PER_REQUEST,
    MAX_URLS_PER_REQUEST,
    BulkCopyRequest,
    CopyRequest,
    StatusDocument,
)

TASK = "5e2d4c6b8a0f1e3d5c7b9a1f3e5d7c9b"
CAP = MAX_URLS_PER_REQUEST
# Each run builds its own fakes and copies up to CAP files in memory: a few dozen lists cross the cap
# both ways without slowing the suite.
CAP_PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _spellings(url: str) -> list[str]:
    """One source as a result list may name it: as it is, under query strings, its host in capitals."""
    return [
        url,
        f"{url}?token=abc&Expires=1790000000",
        url.replace(FILE_HOST, FILE_HOST.upper()) + "?v=2",
    ]


def _not_planned(excess: int) -> str | None:
    return f"{excess} files past the first {CAP} of one callback were not archived" if excess else None


def _archived(fakes: Fakes, doc: StatusDocument, sources: list[str], served: dict[str, bytes]) -> None:
    """Exactly `sources` are the task's files, in that order, each copied with the bytes served."""
    assert [f.source for f in doc.files] == sources
    for file in doc.files:
        assert file.state == "copied"
        assert file.key is not None
        assert fakes.store.objects[file.key].body == served[file.source]
        assert file.sha256 == hashlib.sha256(served[file.source]).hexdigest()


@st.composite
def listings(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """A list naming some distinct files (across the cap), several of them more than once under other
    spellings, in any order; and the distinct sources in the order the list first names them."""
    count = draw(st.integers(min_value=CAP - 10, max_value=CAP + 6))
    bases = result_urls(TASK, *[".png"] * count)
    entries: list[tuple[int, str]] = []
    for n, url in enumerate(bases):
        named = draw(st.lists(st.sampled_from(_spellings(url)), min_size=1, max_size=3))
        entries += [(n, spelling) for spelling in named]
    ordered = draw(st.permutations(entries))
    first_named = list(dict.fromkeys(n for n, _ in ordered))
    return [spelling for _, spelling in ordered], [bases[n] for n in first_named]


# -- callbacks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "sources"),
    [
        # 50 distinct files and one of them again under a query string: all 50 archived.
        pytest.param(
            [*result_urls(TASK, *[".png"] * CAP), result_urls(TASK, ".png")[0] + "?v=2"],
            result_urls(TASK, *[".png"] * CAP),
            id="cap-and-a-variant",
        ),
        # 30 files each named twice: 30 archived, none reported dropped.
        pytest.param(
            [s for u in result_urls(TASK, *[".png"] * 30) for s in (u, u + "?token=abc")],
            result_urls(TASK, *[".png"] * 30),
            id="thirty-twice",
        ),
    ],
)
def test_cap_callback_counts_distinct_sources_not_entries(listed: list[str], sources: list[str]) -> None:
    fakes = make_fakes(inline=True)
    served = serve(fakes, sources)

    doc = receive_callback(fakes.services, signed(market_body(TASK, listed)))

    _archived(fakes, doc, sources, served)
    assert (doc.state, doc.reason) == ("copied", None)
    assert fakes.ledger.tasks[TASK].files_not_planned == 0
    assert fakes.ledger.tasks[TASK].file_count == len(sources)


def test_cap_callback_reason_counts_the_distinct_sources_past_the_cap() -> None:
    fakes = make_fakes()
    urls = result_urls(TASK, *[".png"] * (CAP + 5))
    listed = [s for u in urls for s in (u, u + "?v=2")]

    doc = receive_callback(fakes.services, signed(market_body(TASK, listed)))

    assert [f.source for f in doc.files] == urls[:CAP]
    assert [j.source for j in fakes.queue.sent] == urls[:CAP]  # each from the spelling named first
    assert (doc.state, doc.reason) == ("pending", _not_planned(5))
    assert fakes.ledger.tasks[TASK].files_not_planned == 5


@CAP_PROPERTY
@given(listing=listings())
def test_cap_callback_archives_every_distinct_source_up_to_the_cap(
    listing: tuple[list[str], list[str]],
) -> None:
    listed, sources = listing
    fakes = make_fakes(inline=True)
    served = serve(fakes, sources)

    doc = receive_callback(fakes.services, signed(market_body(TASK, listed)))

    _archived(fakes, doc, sources[:CAP], served)
    excess = max(0, len(sources) - CAP)
    assert fakes.ledger.tasks[TASK].files_not_planned == excess
    assert (doc.state, doc.reason) == ("failed" if excess else "copied", _not_planned(excess))


# -- POST /copies -----------------------------------------------------------------------------------


def _copies(fakes: Fakes, urls: list[str]) -> StatusDocument:
    return request_copies(fakes.services, CopyRequest.model_validate({"taskId": TASK, "urls": urls}))


def test_cap_copies_sixty_entries_naming_fifty_files_are_all_archived() -> None:
    fakes = make_fakes(inline=True)
    sources = result_urls(TASK, *[".png"] * CAP)
    served = serve(fakes, sources)

    doc = _copies(fakes, [*sources, *(u + "?v=2" for u in sources[:10])])

    _archived(fakes, doc, sources, served)
    assert (doc.state, doc.reason) == ("copied", None)


def test_cap_copies_past_the_cap_is_refused_with_the_distinct_sources_past_it() -> None:
    fakes = make_fakes()
    urls = result_urls(TASK, *[".png"] * (CAP + 3))

    with pytest.raises(BadRequestError) as raised:
        _copies(fakes, [s for u in urls for s in (u, u + "?v=2")])

    assert raised.value.reason == (
        f"these URLs name {CAP + 3} distinct files (query strings and spellings of one file count once);"
        f" at most {CAP} per request: 3 past the cap, nothing was recorded"
    )
    assert (fakes.ledger.tasks, fakes.queue.sent, fakes.store.objects) == ({}, [], {})


def test_cap_copies_entries_are_bounded_even_when_they_name_one_file() -> None:
    url = result_urls(TASK, ".png")[0]
    within = [f"{url}?v={n}" for n in range(MAX_URL_ENTRIES_PER_REQUEST)]
    assert CopyRequest.model_validate({"taskId": TASK, "urls": within}).urls == within
    with pytest.raises(ValidationError):
        CopyRequest.model_validate({"taskId": TASK, "urls": [*within, url]})


@CAP_PROPERTY
@given(listing=listings())
def test_cap_copies_archive_every_distinct_source_or_report_those_past_the_cap(
    listing: tuple[list[str], list[str]],
) -> None:
    listed, sources = listing
    fakes = make_fakes(inline=True)
    served = serve(fakes, sources)
    excess = len(sources) - CAP

    if excess > 0:
        with pytest.raises(BadRequestError) as raised:
            _copies(fakes, listed)
        assert f"name {len(sources)} distinct files" in raised.value.reason
        assert f": {excess} past the cap" in raised.value.reason
        assert (fakes.ledger.tasks, fakes.store.objects) == ({}, {})
    else:
        doc = _copies(fakes, listed)
        _archived(fakes, doc, sources, served)
        assert (doc.state, doc.reason) == ("copied", None)


def test_cap_bulk_task_ids_count_each_id_once() -> None:
    ids = [f"t{n}" for n in range(CAP)]

    request = BulkCopyRequest.model_validate({"taskIds": [*ids, *ids[:10]], "family": "market"})

    assert request.task_ids == ids
    with pytest.raises(ValidationError, match=f"at most {CAP} distinct task ids, not {CAP + 1}"):
        BulkCopyRequest.model_validate({"taskIds": [*ids, *ids, "t50"], "family": "market"})
