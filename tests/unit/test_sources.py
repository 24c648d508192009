import pytest

from kie2s3.errors import SourceRefusedError
from kie2s3.settings import DEFAULT_SOURCE_HOSTS
from kie2s3.sources import SourcePolicy, public_url

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


def test_public_url_drops_query_fragment_and_credentials() -> None:
    url = "https://u:p@acct.r2.cloudflarestorage.com:443/b/x.mp4?X-Amz-Signature=secret#frag"
    assert public_url(url) == "https://acct.r2.cloudflarestorage.com:443/b/x.mp4"


def test_public_url_unparseable() -> None:
    assert public_url("http://[::1") == "<unparseable url>"
