"""The soak's tasks of every family: the samples of events/ made into tasks of their own.

A sample's body is rewritten for a fresh task id, each URL it holds moved under
`/soak/<task id>/` on its own host (the same sample URL gives the same task URL, so the stages of
one Suno task agree), and what it must yield is devstack/expected_files.py's hand-written
expectation, its URLs moved likewise. Suno's staged tasks send their stages out of order and
repeated (`text`, `first`, `complete`; `text`, `error`).
"""

from __future__ import annotations

import json
import random
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from devstack.callbacks import load_event, urls_in
from devstack.expected_files import EXPECTED

# One task of each of these is a single sample; the staged ones are several (below).
SINGLE_SAMPLES: tuple[str, ...] = tuple(
    name for name in sorted(EXPECTED) if EXPECTED[name].outcome != "not_final"
)
SUNO_SUCCESS_STAGES = ("callback-suno-text.json", "callback-suno-first.json", "callback-suno-complete.json")
SUNO_FAILURE_STAGES = ("callback-suno-text.json", "callback-suno-error.json")


@dataclass(frozen=True)
class Delivery:
    """One callback of a task as kie.ai sends it: its body and query, signed when sent."""

    sample: str
    body: str
    query: Mapping[str, str] | None


@dataclass(frozen=True)
class SampleTask:
    """A task made from samples: its callbacks in sending order, and what they must yield."""

    task_id: str
    family: str
    deliveries: tuple[Delivery, ...]
    files: tuple[tuple[str, str], ...]  # (url as the callback has it, stored Content-Type), in order
    outcome: str  # devstack/expected_files.py's: success, failed, no_files, unrecognised


def task_url(url: str, task_id: str) -> str:
    """A sample URL moved under `/soak/<task id>/` of its host: the task's own file."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/soak/{task_id}{parts.path}"))


def rewrite(sample: str, task_id: str) -> Delivery:
    """The sample's callback for `task_id`: its task id and every URL it holds replaced, in one pass
    over the raw body (JSON-in-a-string fields included)."""
    from kie2s3.families import task_id_of

    event = load_event(sample)
    raw = str(event["body"])
    body = json.loads(raw)
    old_id = task_id_of(body)
    replacements = {url: task_url(url, task_id) for url in urls_in(body)}
    replacements[old_id] = task_id
    pattern = re.compile("|".join(re.escape(t) for t in sorted(replacements, key=len, reverse=True)))
    rewritten = pattern.sub(lambda m: replacements[m[0]], raw)
    moved = set(urls_in(json.loads(rewritten)))
    if moved != {task_url(u, task_id) for u in urls_in(body)}:  # a URL written another way (escaped)
        raise ValueError(f"{sample}: its URLs were not all rewritten: {sorted(moved)}")
    return Delivery(sample, rewritten, event.get("queryStringParameters"))


def _stages(rng: random.Random, stages: Sequence[str]) -> list[str]:
    """The stages in a random order, some sent twice."""
    sent = list(stages) + [s for s in stages if rng.random() < 0.3]
    rng.shuffle(sent)
    return sent


def sample_task(rng: random.Random, task_id: str) -> SampleTask:
    """A task of a random family: one sample, or a staged Suno task (one in five)."""
    draw = rng.random()
    if draw < 0.15:
        names, final = _stages(rng, SUNO_SUCCESS_STAGES), "callback-suno-complete.json"
    elif draw < 0.2:
        names, final = _stages(rng, SUNO_FAILURE_STAGES), "callback-suno-error.json"
    else:
        final = rng.choice(SINGLE_SAMPLES)
        names = [final]
    expected = EXPECTED[final]
    return SampleTask(
        task_id=task_id,
        family=expected.family,
        deliveries=tuple(rewrite(name, task_id) for name in names),
        files=tuple((task_url(url, task_id), content_type) for url, content_type in expected.files),
        outcome=expected.outcome,
    )
