"""Hypothesis strategies for kie.ai-like input: arbitrary JSON, and mutations of the real samples in events/."""

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

EVENTS = Path(__file__).resolve().parents[1] / "events"
SAMPLES = [json.loads(json.loads(p.read_text())["body"]) for p in sorted(EVENTS.glob("callback-*.json"))]

# Keys the parsers look for, so that generated objects reach past the first `isinstance` checks.
KEYS = st.sampled_from(
    [
        "code", "msg", "data", "taskId", "task_id", "state", "status", "resultJson", "resultUrls",
        "callbackType", "response", "info", "successFlag", "videoInfo", "video_url", "image_url",
        "result_urls", "resultInfoJson", "resultImageUrl", "audioWavUrl", "audio_url", "sunoData",
        "failMsg", "errorMessage", "model", "param", "fullResultUrls", "originUrls", "type",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["success", "fail", "SUCCESS", "complete", "https://tempfile.aiquickdraw.com/p/a.png"])
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS | st.text(max_size=8), children, max_size=5)
        | st.builds(json.dumps, children)  # JSON-in-a-string fields (resultJson, paramJson)
    ),
    max_leaves=25,
)
OBJECTS = st.dictionaries(KEYS | st.text(max_size=8), JSON, max_size=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON tree."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_samples(draw: st.DrawFn) -> dict[str, Any]:
    """A real callback body (events/) with a few values replaced, removed or turned into JSON text."""
    body: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(SAMPLES))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(body)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = body
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "stringify"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "stringify":
            parent[path[-1]] = json.dumps(parent[path[-1]])
        else:
            parent[path[-1]] = draw(JSON)
    return body


BODIES = OBJECTS | mutated_samples()
