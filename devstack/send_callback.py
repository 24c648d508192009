"""`make callback`: send a test callback signed exactly as kie.ai signs it, as a kie.ai integration would.

    make callback FAMILY=<family> [TASK=<id>] [FILES=n]     a fresh callback of that family
    make callback EVENT=events/<file>.json [TASK=<id>]       a sample, as it is (or under another task)
    make callback FAMILY=market URL=<callback URL> HMAC_KEY=<key>   to any receiver

The body is the family's success sample from events/ (the one its parser reads with the most
telling name), under a new task id (TASK, else a random one like kie.ai's) and with result URLs of
its own; FILES=n makes its list of results n long (a Suno track is its audio and its cover image).
The headers are kie.ai's: `X-Webhook-Timestamp` (now) and `X-Webhook-Signature`, the base64
HMAC-SHA256 of `<taskId>.<timestamp>` under the webhook HMAC key. Against the local stack (`make
up`, the default), the kie.ai emulator serves every result URL, its record-info knows a Market
task (for `POST /copies` by task id), and once the answer is in, the task's status is polled until
the copy worker is done. With URL, it goes to that address with HMAC_KEY, and nothing is served.
"""

import argparse
import copy
import json
import posixpath
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from devstack.callbacks import EVENTS_DIR, RemoteEmulator, callback_body, load_event, urls_in
from devstack.cli import Parser, UserError, run
from devstack.kie_emulator import send_callback
from devstack.running import StackState, running_stack, state_dir

WAIT_SECONDS = 60.0
# Parts of a body that name no results: the request as the caller made it (kie2s3 never reads it) and
# the address kie.ai called back. They are sent as they are.
_NOT_RESULTS = frozenset({"param", "callBackUrl", "callbackUrl", "callback_url"})


def _families() -> dict[str, Any]:
    from kie2s3.families import PARSERS

    return {parser.name: parser for parser in PARSERS}


def _parsed(body: dict[str, Any], hint: str | None) -> tuple[str | None, int]:
    """The family a body is read as, and how many files it names (0 for anything but a success)."""
    from kie2s3.families import PARSERS, detect
    from kie2s3.models import Outcome

    parser = detect(body, PARSERS, hint)
    if parser is None:
        return None, 0
    try:
        parsed = parser.parse(body)
    except ValueError:
        return parser.name, 0
    return parser.name, len(parsed.files) if parsed.outcome is Outcome.SUCCESS else 0


def known_family(family: str, what: str = "family") -> str:
    """The family, when a parser of that name exists; else a UserError naming the families."""
    families = _families()
    if family not in families:
        raise UserError(f"unknown {what} {family!r}: one of {', '.join(sorted(families))}")
    return family


def refuse_unknown_hints(url: str | None, query: dict[str, str]) -> None:
    """UserError for a `family=` hint, in the callback URL or the sample's query, that no parser knows:
    kie2s3 would accept the callback and detect its family from the body, warning of the hint."""
    given = urllib.parse.parse_qs(urllib.parse.urlsplit(url or "").query).get("family", [])
    for hint in [*given, *([query["family"]] if "family" in query else [])]:
        known_family(hint, "family hint (?family=)")


def sample_for(family: str) -> Path:
    """The family's sample: a success with files if there is one (`callback-<family>-success.json`
    first, then the shortest name), else any sample of it."""
    known_family(family)
    dashed = family.replace("_", "-")
    ranked = []
    for path in sorted(EVENTS_DIR.glob("callback-*.json")):
        event = load_event(str(path))
        try:
            body = callback_body(event, path.name)
        except UserError:
            continue
        name, files = _parsed(body, (event.get("queryStringParameters") or {}).get("family"))
        if name == family:
            ranked.append((files == 0, path.name != f"callback-{dashed}-success.json", len(path.name), path))
    if not ranked:
        raise UserError(
            f"events/ holds no callback sample of family {family}: make callback EVENT=<file> sends any"
        )
    return min(ranked)[3]


def _walk(value: Any, visit: Callable[[Any], Any], *, results_only: bool = True) -> Any:
    """`visit` applied bottom-up to every value, JSON held in a string included (written back as JSON);
    with `results_only`, the parts that name no results (_NOT_RESULTS) are left as they are."""
    if isinstance(value, dict):
        value = {
            k: v if results_only and k in _NOT_RESULTS else _walk(v, visit, results_only=results_only)
            for k, v in value.items()
        }
    elif isinstance(value, list):
        value = [_walk(v, visit, results_only=results_only) for v in value]
    elif isinstance(value, str) and value[:1] in "{[":
        try:
            inner = json.loads(value)
        except ValueError:
            pass
        else:
            return json.dumps(_walk(inner, visit, results_only=results_only))
    return visit(value)


def with_task(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The body with every mention of the old task id (fields, URLs, JSON strings) naming the new one."""
    rename: Callable[[Any], Any] = lambda v: v.replace(old, new) if isinstance(v, str) else v  # noqa: E731
    result: dict[str, Any] = _walk(body, rename, results_only=False)
    return result


def with_files(body: dict[str, Any], files: int, family: str) -> dict[str, Any]:
    """The body with its first list of results (URLs, or entries holding URLs) made `files` long."""
    done = False

    def resize(value: Any) -> Any:
        nonlocal done
        if done or not isinstance(value, list) or not value:
            return value
        if all(urls_in(item) for item in value):
            done = True
            return [copy.deepcopy(value[n % len(value)]) for n in range(files)]
        return value

    resized: dict[str, Any] = _walk(body, resize)
    if not done:
        raise UserError(f"a {family} callback names a fixed set of files: leave FILES out")
    return resized


def with_fresh_urls(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The body with each result URL made unique to the task: same host, folder and suffix."""
    count = 0

    def fresh(value: Any) -> Any:
        nonlocal count
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            return value
        split = urllib.parse.urlsplit(value)
        suffix = posixpath.splitext(split.path)[1]
        path = posixpath.join(posixpath.dirname(split.path), f"{task_id}_{count}{suffix}")
        count += 1
        return urllib.parse.urlunsplit((split.scheme, split.netloc, path, "", ""))

    result: dict[str, Any] = _walk(body, fresh)
    return result


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


def wait_for_copies(api_url: str, task_id: str, timeout: float = WAIT_SECONDS) -> Any:
    """The task's status document once none of its files is waiting or being copied."""
    deadline = time.monotonic() + timeout
    while True:
        _, document = _get_json(f"{api_url}/tasks/{task_id}")
        files = document.get("files", []) if isinstance(document, dict) else []
        if time.monotonic() > deadline or not any(f["state"] in ("pending", "copying") for f in files):
            return document
        time.sleep(0.25)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked: FAMILY or EVENT, FILES at least one, URL with its HMAC_KEY."""
    parser = Parser(prog="devstack.send_callback", description=__doc__)
    parser.add_argument("--family", help="the callback's family (FAMILY)")
    parser.add_argument("--event", help="send this events/ sample instead (EVENT)")
    parser.add_argument("--task", help="the task id (TASK); default: a new one, or the sample's")
    parser.add_argument("--files", type=int, help="how many results (FILES)")
    parser.add_argument("--size", type=int, default=256 * 1024, help="bytes of each file the emulator serves")
    parser.add_argument("--url", help="POST here instead of the local stack (URL)")
    parser.add_argument("--hmac-key", help="sign with this key, with --url (HMAC_KEY)")
    parser.add_argument("--state-dir", help="the local stack's state directory (default .devstack/up)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the copies")
    args = parser.parse_args(argv)
    if bool(args.family) == bool(args.event):
        raise UserError(
            "make callback FAMILY=<family> [TASK=<id>] [FILES=n], or make callback EVENT=events/<file>.json"
            + (": not both" if args.family else "")
        )
    if args.files is not None and args.files < 1:
        raise UserError(f"FILES={args.files}: at least one file")
    if args.url and not args.hmac_key:
        raise UserError(
            "URL given without HMAC_KEY: make callback ... URL=<callback URL> HMAC_KEY=<webhook HMAC key>"
        )
    return args


def _task_ids(args: argparse.Namespace, body: dict[str, Any], name: str) -> tuple[str, str]:
    """The sample's task id (the one kie.ai signed) and the one to send: TASK, the sample's, or a new one."""
    from kie2s3.errors import BadRequestError
    from kie2s3.families import task_id_of
    from kie2s3.models import TASK_ID_PATTERN

    try:
        sample_task = task_id_of(body)
    except BadRequestError as exc:
        raise UserError(f"{name} names no one task id ({exc}): kie.ai signs that id") from exc
    task_id = args.task or (sample_task if args.event else uuid.uuid4().hex)
    if not TASK_ID_PATTERN.fullmatch(task_id):
        raise UserError(f"TASK={task_id!r} is not a kie.ai task id (letters, digits, _ and -, at most 128)")
    return sample_task, task_id


def _body_to_send(
    args: argparse.Namespace, body: dict[str, Any], family: str | None, sample_task: str, task_id: str
) -> dict[str, Any]:
    """The sample made the callback asked for: under its task id, with FILES results, URLs of its own."""
    if task_id != sample_task:
        body = with_task(body, sample_task, task_id)
    if args.files is not None:
        body = with_files(body, args.files, family or "unrecognised")
    if args.family or task_id != sample_task or args.files is not None:
        body = with_fresh_urls(body, task_id)
    return body


def _print_answer(target: str, status: int, raw: bytes) -> None:
    print(f"POST {target} -> {status}")
    try:
        print(json.dumps(json.loads(raw), indent=2))
    except ValueError:
        print(raw.decode(errors="replace"))


def _target(stack: StackState | None, url: str | None, query: dict[str, str]) -> str:
    """Where the callback goes: the local stack's callback route, or URL; with the sample's query."""
    target = f"{stack.api_url}/callbacks/kie" if stack is not None else str(url)
    if query:
        target += ("&" if "?" in target else "?") + urllib.parse.urlencode(query)
    return target


def _serve(stack: StackState, body: dict[str, Any], family: str | None, task_id: str, size: int) -> None:
    """The local stack's kie.ai emulator serves the body's URLs (and knows a Market task's record-info)."""
    emulator = RemoteEmulator(stack.emulator_url, stack.kie_api_key)
    emulator.serve(urls_in(body), size=size)
    if family == "market":
        emulator.add_task("market", task_id, body["data"])


def main(argv: Sequence[str] | None = None) -> int:
    """Build the callback, serve its files, sign it, POST it; print the answer (and the final state)."""
    args = _arguments(argv)
    name = args.event or str(sample_for(args.family))
    event = load_event(name)
    body = callback_body(event, name)
    query = dict(event.get("queryStringParameters") or {})
    refuse_unknown_hints(args.url, query)
    stack = None if args.url else running_stack(state_dir(args.state_dir))
    family, _ = _parsed(body, query.get("family"))
    sample_task, task_id = _task_ids(args, body, name)
    body = _body_to_send(args, body, family, sample_task, task_id)
    target = _target(stack, args.url, query)
    if stack is not None:
        _serve(stack, body, family, task_id, args.size)
    where = "its URLs served by the kie.ai emulator" if stack else f"to {target}"
    print(
        f"{family or 'unrecognised'} callback for task {task_id} ({Path(name).name}), {where}, "
        "signed as kie.ai signs it",
        flush=True,
    )
    key = args.hmac_key or (stack.hmac_key if stack else "")
    try:
        status, raw = send_callback(target, body, task_id, key, timeout=30)
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"POST {target} failed: {exc}", status=1) from exc
    _print_answer(target, status, raw)
    if stack is not None and status == 200 and not args.no_wait:
        final = wait_for_copies(stack.api_url, task_id)
        print(f"\nGET {stack.api_url}/tasks/{task_id} once the copy worker is done: {final.get('state')}")
        print(json.dumps(final, indent=2))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(run(main))
