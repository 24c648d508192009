"""The host the source policy judges is the host a connection is made to, whatever the URL's spelling.

URLs are built from the pieces two parsers are known to read differently (backslashes, `@`, `#`,
control and whitespace characters, percent-encoded and full-width dots, IDNA forms, brackets,
ports): any URL the policy accepts must name, for urllib3's pool (what connects) and for
urllib.parse (what most other code reads), one and the same allowed host.
"""

from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kie2s3.adapters.safe_http import SafePoolManager
from kie2s3.errors import SourceRefusedError
from kie2s3.sources import SourcePolicy, canonical_url

ALLOWED = "*.aiquickdraw.com"
POLICY = SourcePolicy((ALLOWED,))

# Mostly a plausible kie.ai host, with the pieces parsers disagree on mixed in around and inside it.
TRICKS = [
    "\\", "/", "@", "#", "?", ":", "[", "]", "%2e", "%2E", "%40", "%5C", "\uff0e", "\u3002", "\u200b",
    "\u00e9", "\uff45", " ", "\t", "\n", "\r", "\x00", "\x7f", "\x85", "user:pw@", "evil.example",
]  # fmt: skip
LABELS = st.sampled_from(["tempfile", "file", "evil", "a-b", "xn--bcher-kva", "0", "127"])
HOSTS = st.builds(
    lambda before, labels, inside, tail: f"{before}{'.'.join(labels)}{inside}{tail}",
    st.just("") | st.sampled_from(TRICKS),
    st.lists(LABELS, min_size=1, max_size=3),
    st.just("") | st.sampled_from(TRICKS),
    st.sampled_from([".aiquickdraw.com", ".aiquickdraw.com", ".aiquickdraw.com.", ".AIQuickDraw.com"])
    | st.sampled_from(TRICKS).map(lambda trick: f".aiquickdraw.com{trick}evil.example")
    | st.sampled_from(TRICKS).map(lambda trick: f"{trick}aiquickdraw.com"),
)
PORTS = st.sampled_from(["", "", "", ":443", ":8443", ":+1", ":99999", ":0x1bb", ":44 3"])
SCHEMES = st.sampled_from(
    ["https://", "https://", "HTTPS://", "https:/", "https:\\\\", "https:", "\uff48ttps://"]
)
PATHS = st.sampled_from(
    ["", "/", "/p/x.png", "/p/\u65e5\u672c\u8a9e Lead Vocal.mp3", "\\x.png", "?q=1", "#f"]
)
URLS = st.builds(lambda *parts: "".join(parts), SCHEMES, HOSTS, PORTS, PATHS)


@settings(max_examples=2000, deadline=None, database=None, derandomize=True)
@given(url=URLS)
@example(url="https://evil.example\\.aiquickdraw.com/x.png")
@example(url="https://evil.example%2Etempfile.aiquickdraw.com/x.png")
@example(url="https://evil.example#@tempfile.aiquickdraw.com/x.png")
@example(url="https://tempfile.aiquickdraw.com\\@evil.example/x.png")
@example(url="https://tempfile.aiquickdraw.com/p/日本語 の画像.png")
def test_the_host_the_policy_judges_is_the_host_urllib3_connects_to(url: str) -> None:
    try:
        POLICY.check(url)
    except SourceRefusedError:
        return
    pool = SafePoolManager(POLICY).connection_from_url(url)
    assert fnmatchcase(pool.host, ALLOWED), (url, pool.host)
    assert urlsplit(url).hostname == pool.host, (url, pool.host)  # the other parser reads it the same
    canonical = canonical_url(url)
    assert urlsplit(canonical).hostname == pool.host, canonical
    assert canonical.isascii()
    assert canonical.isprintable()
    assert " " not in canonical
