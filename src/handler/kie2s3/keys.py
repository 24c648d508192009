"""Object keys from the KeyTemplate: checked once at start, rendered once when a file is first recorded."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from kie2s3.media import url_suffix

# Today's layout, `<prefix><taskId>/<index><suffix>` (e.g. `kie/7c1e…a871/01.mp4`): the default.
DEFAULT_KEY_TEMPLATE = "{prefix}{taskId}/{index}{ext}"
PLACEHOLDERS = ("prefix", "taskId", "family", "model", "index", "ext", "yyyy", "mm", "dd")
# Within one task, the index tells files apart; the task id tells tasks apart.
REQUIRED = ("taskId", "index")
# `{taskId}` as a whole path segment: after a `/` or right after the leading `{prefix}`, and before a
# `/` (template.yaml's KeyTemplate AllowedPattern says the same). A task id holds no `/`
# (models.TASK_ID_REGEX) and no other value put before it does but OBJECT_PREFIX, which is the same
# for every key: so the task id is read back from the key, and two tasks never share one.
# Right after the leading `{prefix}`, the task id is a path segment of its own only when OBJECT_PREFIX
# ends with `/` (the default `kie/`) or is empty; keys stay unique across tasks whatever it is.
_TASK_SEGMENT = re.compile(r"(?:^\{prefix\}|/)\{taskId\}/")
# Literal characters a template may hold: S3's "safe characters" (docs.aws.amazon.com/AmazonS3/
# latest/userguide/object-keys.html) plus `/` and `=` (Hive-style `year=2026/` partitions).
_LITERAL = re.compile(r"[A-Za-z0-9/!_.*'()=-]*")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# What a value put into a key may hold ({model}, {family}): anything else becomes `-`.
_NOT_SEGMENT = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SEGMENT_CHARS = 128


def key_segment(value: str) -> str:
    """A value as one key segment: runs of characters keys should not hold (`/` included) become one
    `-`, leading and trailing dots and dashes are dropped (never a `.` or `..` segment), at most 128."""
    return _NOT_SEGMENT.sub("-", value).strip("-.")[:MAX_SEGMENT_CHARS].strip("-.")


def _check_literal(text: str) -> None:
    if _LITERAL.fullmatch(text):
        return
    bad = next(c for c in text if not _LITERAL.fullmatch(c))
    if bad in "{}":
        raise ValueError(f"an unmatched {bad!r}: placeholders are written {{name}}")
    raise ValueError(
        f"character {bad!r} is not allowed in keys; literal text may hold A-Z a-z 0-9 / ! _ . * ' ( ) = -"
    )


@dataclass(frozen=True)
class KeyTemplate:
    """A validated key template: its placeholders are known and it names `{taskId}` and `{index}`."""

    text: str

    @classmethod
    def parse(cls, text: str) -> "KeyTemplate":
        """The template, or ValueError saying what is wrong with it."""
        known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        at = 0
        for found in _PLACEHOLDER.finditer(text):
            _check_literal(text[at : found.start()])
            if found.group(1) not in PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {found.group(0)}; known: {known}")
            at = found.end()
        _check_literal(text[at:])
        if not text.startswith("{prefix}"):
            # The functions may write only under OBJECT_PREFIX (template.yaml scopes S3 to it).
            raise ValueError(
                f"the template must start with {{prefix}} (writes are allowed there only); got {text!r}"
            )
        named = set(_PLACEHOLDER.findall(text))
        for required in REQUIRED:
            if required not in named:
                raise ValueError(f"the template must hold {{{required}}} (keys must be unique); got {text!r}")
        if not _TASK_SEGMENT.search(text):
            raise ValueError(
                "{taskId} must be a whole path segment, right after the leading {prefix} or a '/' and "
                f"followed by '/' (else two tasks can share a key); got {text!r}"
            )
        return cls(text)

    def render(
        self,
        *,
        prefix: str,
        task_id: str,
        family: str,
        model: str | None,
        index: int,
        url: str,
        created_at: datetime,
    ) -> str:
        """The key of file `index` of a task: `{model}` is Market's model name, else the family, made
        a safe key segment; `{index}` has at least two digits; `{ext}` is the URL's suffix (`.bin`
        when it names none we know); the date is the task's first recording, in UTC."""
        day = created_at.astimezone(UTC)
        values = {
            "prefix": prefix,
            "taskId": task_id,
            "family": key_segment(family) or "unknown",
            "model": key_segment(model or "") or key_segment(family) or "unknown",
            "index": f"{index:02d}",
            "ext": url_suffix(url) or ".bin",
            "yyyy": f"{day.year:04d}",
            "mm": f"{day.month:02d}",
            "dd": f"{day.day:02d}",
        }
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.text)


@lru_cache(maxsize=4)
def key_template(text: str) -> KeyTemplate:
    """The parsed template (settings have validated it already)."""
    return KeyTemplate.parse(text)
