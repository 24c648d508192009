import pytest

from kie2s3.errors import SourceRefusedError
from kie2s3.settings import DEFAULT_SOURCE_HOSTS
from kie2s3.sources import SourcePolicy, canonical_url

POLICY = SourcePolicy(DEFAULT_SOURCE_HOSTS)
LOCAL = SourcePolicy(DEFAULT_SOURCE_HOSTS, allow_local=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://tempfile.aiquickdraw.com/p/abc_0.png",
        "https://file.aiquickdraw.com/v/x.mp4",
        "https://acct123.r2.cloudflarestorage.com/bucket/x.mp4?X-Amz-Signature=abc",
        "https://TEMPFILE.redpandaai.co/kieai/1/x.png",
    ],
)
def test_source_policy_accepts_kie_hosts_over_https(url: str) -> None:
    assert POLICY.check(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://tempfile.aiquickdraw.com/p/a.png", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("ftp://tempfile.aiquickdraw.com/a.png", "scheme"),
        ("https://evil.example.com/a.png", "not in ALLOWED_SOURCE_HOSTS"),
        ("https://aiquickdraw.com.evil.example/a.png", "not in ALLOWED_SOURCE_HOSTS"),
        ("https://user:pw@tempfile.aiquickdraw.com/a.png", "credentials"),
        ("https://127.0.0.1/a.png", "not in ALLOWED_SOURCE_HOSTS"),
        ("http://127.0.0.1:8080/a.png", "scheme"),
        ("https://tempfile.aiquickdraw.com:99999/a.png", "valid URL"),
        ("https:///a.png", "no host"),
    ],
)
def test_source_policy_refuses(url: str, reason: str) -> None:
    with pytest.raises(SourceRefusedError, match=reason):
        POLICY.check(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/dl/a.png", "http://localhost:1/x", "http://[::1]:5/x"]
)
def test_source_policy_local_mode_allows_http_loopback(url: str) -> None:
    assert LOCAL.check(url) == url


def test_source_policy_local_mode_still_refuses_http_elsewhere() -> None:
    with pytest.raises(SourceRefusedError, match="scheme"):
        LOCAL.check("http://tempfile.aiquickdraw.com/a.png")


def test_canonical_url_drops_query_fragment_credentials_and_default_port() -> None:
    url = "https://u:p@ACCT.r2.cloudflarestorage.com:443/b/x.mp4?X-Amz-Signature=secret#frag"
    assert canonical_url(url) == "https://acct.r2.cloudflarestorage.com/b/x.mp4"


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://Tempfile.AIQUICKDRAW.com/p/a.png", "https://tempfile.aiquickdraw.com/p/a.png"),
        ("https://h.example:8443/a/./b/../c.png", "https://h.example:8443/a/c.png"),
        ("https://h.example/p/Lead Vocal.mp3", "https://h.example/p/Lead%20Vocal.mp3"),
        ("https://h.example/p/日本語.png?x=1", "https://h.example/p/%E6%97%A5%E6%9C%AC%E8%AA%9E.png"),
        ("https://h.example/p/%e6%97%a5.png", "https://h.example/p/%E6%97%A5.png"),
        ("https://h.example", "https://h.example/"),
    ],
)
def test_canonical_url_is_urllib3s_parse_normalised(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical
    assert canonical_url(canonical) == canonical  # a canonical form is its own canonical form


@pytest.mark.parametrize(
    "url", ["http://[::1", "https://[x/a.png?sig=secret", "https://\uff48.example/日本?k=v"]
)
def test_canonical_url_of_unparseable_text_is_ascii_without_query(url: str) -> None:
    canonical = canonical_url(url)
    assert canonical.isascii()
    assert canonical.isprintable()
    assert " " not in canonical
    assert "?" not in canonical
    assert "secret" not in canonical


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example\\.aiquickdraw.com/x.png",  # urllib.parse: *.aiquickdraw.com; urllib3: evil.example
        "https://evil.example%2Eaiquickdraw.com/x.png",
        "https://evil.example\uff0eaiquickdraw.com/x.png",  # a full-width dot
        "https://tempfile.aiquickdraw.com\t.evil.example/x.png",
        "https://tempfile.aiquickdraw.com /x.png",
        "https://xn--tempfile.aiquickdraw.com\u00e9/x.png",
        "https://[x/a.png",
        "https://tempfile.aiquickdraw.com:4%343/x.png",
        "https://tempfile.aiquickdraw.com:+443/x.png",
    ],
)
def test_source_policy_refuses_authorities_parsers_read_differently(url: str) -> None:
    with pytest.raises(SourceRefusedError):
        LOCAL.check(url)


def test_source_policy_accepts_spaces_and_non_ascii_in_the_path() -> None:
    url = "https://tempfile.aiquickdraw.com/p/日本語の画像 Lead Vocal.png"
    assert POLICY.check(url) == url
