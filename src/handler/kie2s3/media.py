"""What kind of file a URL names, its key suffix, and its Content-Type as told by its bytes."""

from pathlib import PurePosixPath

import puremagic

from kie2s3.models import FileKind
from kie2s3.sources import url_path

_KIND_BY_SUFFIX: dict[str, FileKind] = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".avif", ".heic"), "image"),
    **dict.fromkeys((".mp4", ".mov", ".webm", ".m4v", ".mkv", ".avi"), "video"),
    **dict.fromkeys((".mp3", ".wav", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".mid", ".midi"), "audio"),
}
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})
# How many leading bytes sniffing looks at; every signature we rely on sits in the first few dozen.
SNIFF_BYTES = 4096


def url_suffix(url: str) -> str:
    """The file suffix of a URL's path (lower case, with the dot), or "" when it has none we know.

    Never raises: a URL no parser can read has no suffix we know.
    """
    suffix = PurePosixPath(url_path(url)).suffix.lower()
    return suffix if suffix in _KIND_BY_SUFFIX else ""


def kind_of(url: str, default: FileKind = "file") -> FileKind:
    """The kind of file a URL names, from its suffix."""
    return _KIND_BY_SUFFIX.get(url_suffix(url), default)


def sniff_content_type(head: bytes, declared: str | None) -> str:
    """The Content-Type to store: the bytes decide; the server's header only when they say nothing.

    kie.ai's hosts derive Content-Type from the file name, so a JPEG named `.png` is served as
    image/png (kie-api.md §6): the magic bytes are the better witness.
    """
    declared_type = (declared or "").split(";", 1)[0].strip().lower()
    try:
        sniffed = puremagic.from_string(head[:SNIFF_BYTES], mime=True)
    except (puremagic.PureError, ValueError):
        sniffed = ""
    if sniffed:
        return str(sniffed)
    return declared_type if declared_type not in GENERIC_TYPES else "application/octet-stream"
