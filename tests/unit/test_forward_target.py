"""The forward loop (issue 21, item 8): every spelling of kie2s3's callback route that a server would
route to `/callbacks/kie` is refused, by the one function that judges it (settings.forward_target_
refusal, used at start, at forward time and by the deploy preflight) and by ForwardUrl's pattern."""

import re
from urllib.parse import quote

import pytest
from devstack.template import load_template
from hypothesis import given
from hypothesis import strategies as st

from kie2s3.settings import forward_target_refusal
from kie2s3.sources import served_path

FORWARD_URL_PATTERN = re.compile(load_template()["Parameters"]["ForwardUrl"]["AllowedPattern"])
HOST = "https://api.example.com"


def _loops(url: str) -> bool:
    refusal = forward_target_refusal(url, allow_local=False)
    return refusal is not None and "loop" in refusal


@pytest.mark.parametrize(
    "path",
    [
        "//callbacks/kie",
        "/callbacks//kie",
        "/callbacks/kie//",
        "/callbacks/kie;a",
        "/callbacks;a/kie",
        "/callbacks/%6bie",
        "/%63allbacks/kie",
        "/callbacks%2Fkie",
        "/callbacks%2fkie",
        "/callbacks/kie%20",
        "/callbacks/kie%2F",
        "/callbacks/kie/%2e",
        "/callbacks/x/%2e%2E/kie",
        "/callbacks%5Ckie",
        "/callbacks\\kie",
        "/callbacks/kie%3Ba",
        "/callbacks/%256bie",
        "/prod/callbacks/kie.",
        "/callbacks/kie%09",
    ],
)
def test_forward_target_refusal_sees_through_spellings_of_the_callback_route(path: str) -> None:
    assert _loops(HOST + path), path
    assert not FORWARD_URL_PATTERN.fullmatch(HOST + path), path


@pytest.mark.parametrize(
    "path",
    [
        "/callbacks/kie2",
        "/callbacks/kie/x",
        "/callbacks-kie",
        "/kie",
        "/callbacks",
        "/hooks/kie",
        "/callbacks/ki",
    ],
)
def test_forward_target_refusal_lets_other_routes_through(path: str) -> None:
    assert forward_target_refusal(HOST + path, allow_local=False) is None, path
    assert FORWARD_URL_PATTERN.fullmatch(HOST + path), path


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("/a//b/", "/a/b"),
        ("/a;x/b;y=1", "/a/b"),
        ("/A/%42", "/a/b"),
        ("/a/%2e%2e/b", "/b"),
        ("/../a", "/a"),
        ("/a%2Fb", "/a/b"),
        ("/a%252Fb", "/a/b"),
        ("/a%20/b.", "/a/b"),
        ("", "/"),
    ],
)
def test_served_path_normalises_as_a_server_would(path: str, served: str) -> None:
    assert served_path(HOST + path) == served


def _char(c: str) -> st.SearchStrategy[str]:
    """One character of the route, as itself, in upper case, or percent-encoded (once or twice)."""
    hexed = f"%{ord(c):02x}"
    return st.sampled_from([c, c.upper(), hexed, hexed.upper(), quote(hexed, safe="")])


def _word(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(_char(c) for c in word)).map("".join)


# What a server drops around a segment: parameters, a trailing blank or dot (`%20`, `%09`, `.`).
_DECORATION = st.sampled_from(["", "", ";", ";a", ";a=1", "%3Bx", "%20", "%09", ".", "%2e"])
# Between segments: one slash, or any spelling that comes back to one.
_SEPARATOR = st.sampled_from(
    ["/", "//", "/./", "/%2e/", "/x/../", "/x/%2E%2e/", "%2F", "%2f", "/%2F", "\\", "%5C", "%252F"]
)
_STAGE = st.lists(st.sampled_from(["prod", "v1", "a.b", "%70rod", "callbacks"]), max_size=2)
_TAIL = st.sampled_from(["", "/", "//", "/.", "/%2e", "?family=veo", "#x", "/?token=t", "%2F"])


@st.composite
def route_spellings(draw: st.DrawFn) -> str:
    """A URL whose path a server would route to .../callbacks/kie."""
    stage = "".join("/" + segment for segment in draw(_STAGE))
    return (  # a "/" first: the authority ends there
        f"{HOST}{stage}/{draw(_SEPARATOR)}{draw(_word('callbacks'))}{draw(_DECORATION)}"
        f"{draw(_SEPARATOR)}{draw(_word('kie'))}{draw(_DECORATION)}{draw(_TAIL)}"
    )


@given(url=route_spellings())
def test_every_spelling_of_the_callback_route_is_refused_at_start(url: str) -> None:
    assert _loops(url), url


@given(url=route_spellings())
def test_every_spelling_of_the_callback_route_is_refused_at_deploy(url: str) -> None:
    assert not FORWARD_URL_PATTERN.fullmatch(url), url


_PATHS = st.lists(
    st.sampled_from(["/", "callbacks", "kie", "Kie", ";", "%", "2F", "6b", ".", "..", "x", "\\", "%20"]),
    max_size=8,
).map("".join)


@given(path=_PATHS)
def test_what_the_pattern_deploys_the_function_never_calls_a_loop(path: str) -> None:
    url = f"{HOST}/{path}"
    if FORWARD_URL_PATTERN.fullmatch(url):
        assert not _loops(url), url
