import pytest

from kie2s3.media import kind_of, sniff_content_type, url_suffix

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 32


@pytest.mark.parametrize(
    ("url", "suffix", "kind"),
    [
        ("https://h/p/a_0.PNG", ".png", "image"),
        ("https://h/v/a.mp4?sig=1", ".mp4", "video"),
        ("https://h/s/a.mp3", ".mp3", "audio"),
        ("https://h/stream/5a1c9e2f", "", "file"),
        ("https://h/x.exe", "", "file"),
    ],
)
def test_url_suffix_and_kind(url: str, suffix: str, kind: str) -> None:
    assert url_suffix(url) == suffix
    assert kind_of(url) == kind


def test_sniff_content_type_bytes_win_over_wrong_header() -> None:
    assert sniff_content_type(JPEG, "image/png") == "image/jpeg"


def test_sniff_content_type_fixes_generic_header() -> None:
    assert sniff_content_type(MP4, "application/octet-stream") == "video/mp4"
    assert sniff_content_type(PNG, None) == "image/png"


def test_sniff_content_type_keeps_specific_header_when_bytes_say_nothing() -> None:
    assert sniff_content_type(b"plain words", "text/plain; charset=utf-8") == "text/plain"


def test_sniff_content_type_falls_back_to_octet_stream() -> None:
    assert sniff_content_type(b"", "binary/octet-stream") == "application/octet-stream"
