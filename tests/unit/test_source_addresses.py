"""The source policy's address rules: public unicast only, whatever the host list or the URL's spelling."""

import pytest
import urllib3
from tests.servers import Canary, canary, loopback_only

from kie2s3.adapters.safe_http import SafePoolManager
from kie2s3.errors import SourceRefusedError
from kie2s3.sources import SourcePolicy

__all__ = ["canary", "loopback_only"]  # fixtures used here

ANY_HOST = SourcePolicy(("*",))
ANY_HOST_LOCAL = SourcePolicy(("*",), allow_local=True)
KIE_ONLY = SourcePolicy(("tempfile.aiquickdraw.com",))


@pytest.mark.parametrize("address", ["8.8.8.8", "104.18.2.3", "2606:4700::1111", "2a00:1450:4001::200e"])
def test_check_address_accepts_public(address: str) -> None:
    ANY_HOST.check_address("files.example", address)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "169.254.169.254", "fd00:ec2::254", "10.1.1.1", "not-an-address"]
)
def test_check_address_refuses_internal(address: str) -> None:
    with pytest.raises(SourceRefusedError):
        ANY_HOST.check_address("files.example", address)


def test_check_address_local_allows_loopback_only() -> None:
    ANY_HOST_LOCAL.check_address("localhost", "127.0.0.1")
    ANY_HOST_LOCAL.check_address("localhost", "::1")
    with pytest.raises(SourceRefusedError, match="private"):
        ANY_HOST_LOCAL.check_address("files.example", "192.168.0.10")
    with pytest.raises(SourceRefusedError, match="link-local"):
        ANY_HOST_LOCAL.check_address("files.example", "169.254.169.254")


INTERNAL_LITERALS = [
    ("https://169.254.169.254/latest/meta-data/iam/", "link-local"),
    ("https://[fd00:ec2::254]/latest/", "private"),
    ("https://[::ffff:169.254.169.254]/latest/", "link-local"),
    ("https://10.0.0.1/a.png", "private"),
    ("https://192.168.0.1/a.png", "private"),
    ("https://100.100.100.200/latest/", "CGNAT"),
    ("https://127.0.0.1/a.png", "loopback"),
    ("https://[::1]/a.png", "loopback"),
    ("https://0.0.0.0/a.png", "unspecified"),
]
TRICKY_SPELLINGS = [
    ("gopher://tempfile.aiquickdraw.com/a", "scheme"),
    ("data:text/plain,hello", "scheme"),
    ("tempfile.aiquickdraw.com/a.png", "scheme"),
    ("https://tempfile.aiquickdraw.com\\@evil.example/a.png", "credentials"),
    ("https://evil.example#@tempfile.aiquickdraw.com/a.png", "ALLOWED_SOURCE_HOSTS"),
    ("https://:pw@tempfile.aiquickdraw.com/a.png", "credentials"),
    ("https://tempfile.aiquickdraw.com.evil.example/a.png", "ALLOWED_SOURCE_HOSTS"),
    ("https://tempfile\u3002aiquickdraw.com/a.png", "plain host name"),
]


@pytest.mark.parametrize(
    ("policy", "url", "reason"),
    # Internal literals are refused even when every host is allowed; tricky spellings by a host list.
    [(ANY_HOST, *case) for case in INTERNAL_LITERALS] + [(KIE_ONLY, *case) for case in TRICKY_SPELLINGS],
)
def test_check_refuses(policy: SourcePolicy, url: str, reason: str) -> None:
    with pytest.raises(SourceRefusedError, match=reason):
        policy.check(url)


def test_check_endpoint_takes_kie_api_without_host_list() -> None:
    assert KIE_ONLY.check_endpoint("https://api.kie.ai/api/v1/common/download-url")
    with pytest.raises(SourceRefusedError, match="ALLOWED_SOURCE_HOSTS"):
        KIE_ONLY.check("https://api.kie.ai/api/v1/common/download-url")
    with pytest.raises(SourceRefusedError, match="scheme"):
        KIE_ONLY.check_endpoint("http://api.kie.ai/api/v1/common/download-url")


@pytest.mark.usefixtures("loopback_only")
@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "017700000001", "127.1"])
def test_pool_refuses_numeric_spellings_of_loopback(canary: Canary, host: str) -> None:
    # Not literals to `ipaddress`, so the string check lets them by; the resolver maps them to 127.0.0.1.
    pool = SafePoolManager(ANY_HOST, retries=False, timeout=urllib3.Timeout(connect=2, read=5))
    with pytest.raises(SourceRefusedError, match="loopback"):
        pool.request("GET", canary.url("/x", scheme="https", host=host))
