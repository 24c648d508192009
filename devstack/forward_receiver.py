"""A stand-in for your own callback handler: receives kie2s3's forwarded callbacks on loopback.

    python -m devstack.forward_receiver [--port 9000] [--key KEY] [--tolerance 300]

Each POST is checked as a handler that verifies kie.ai's webhook signature would check it, with
kie2s3's own verifier (kie2s3.signature.verify_signature over the body's task id and
X-Webhook-Timestamp), then printed: the verdict, the task id, and the `kie2s3` status document it
carries. It answers 200 when the signature verifies, 401 otherwise. Tests script other answers
(an error status, a redirect, an answer that never comes) and inject the clock it verifies with.
"""

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, TextIO

from devstack.cli import Parser, run

DEFAULT_PORT: Final = 9000
# Answers a test may script: a status code, a redirect to a URL, or HANG (no answer until released).
HANG: Final = "hang"


@dataclass(frozen=True)
class Received:
    """One forwarded callback as the receiver got it."""

    path: str  # with its query, as requested
    headers: dict[str, str]  # names lower-cased
    body: bytes
    verified: bool
    reason: str  # why the signature was refused ("" when verified)
    task_id: str | None
    at: float  # the receiver's clock when it arrived

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


def verify(
    key: str, received_headers: dict[str, str], body: bytes, now: float, tolerance: int
) -> tuple[bool, str, str | None]:
    """(verified, why not, task id): kie.ai's scheme, checked by kie2s3's own verifier."""
    from kie2s3.errors import Kie2S3Error
    from kie2s3.families import task_id_of
    from kie2s3.signature import verify_signature

    try:
        parsed = json.loads(body)
        task_id = task_id_of(parsed) if isinstance(parsed, dict) else None
    except (ValueError, Kie2S3Error):
        return False, "body is not a callback with a task id", None
    if task_id is None:
        return False, "body is not a JSON object", None
    try:
        verify_signature(
            key=key,
            task_id=task_id,
            timestamp=received_headers.get("x-webhook-timestamp"),
            signature=received_headers.get("x-webhook-signature"),
            now=now,
            tolerance=tolerance,
        )
    except Kie2S3Error as exc:
        return False, exc.reason, task_id
    return True, "", task_id


class ForwardReceiver:
    """An HTTP server on 127.0.0.1 recording (and, with `out`, printing) every forwarded callback.

    `answer` is what the next requests get: an HTTP status (default: 200 if the signature verifies,
    401 if not), `("redirect", url)`, or HANG (the request is held until `release()` or `stop()`).
    `stop()` and `start()` take it down and bring it back on the same port.
    """

    def __init__(
        self,
        key: str,
        *,
        port: int = 0,
        tolerance: int = 300,
        clock: Callable[[], float] = time.time,
        out: TextIO | None = None,
    ) -> None:
        self.key = key
        self.tolerance = tolerance
        self.clock = clock
        self.out = out
        self.received: list[Received] = []
        self.answer: int | tuple[str, str] | str | None = None
        self.reply = b'{"status":"received"}'  # the body of a 200
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self.start()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ForwardReceiver":
        """Listen (again) on the port; idempotent."""
        if self._server is None:
            self._released.clear()
            self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
            self._server.daemon_threads = True
            self._port = int(self._server.server_address[1])
            threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused until `start()`); releases held requests."""
        server, self._server = self._server, None
        if server is not None:
            self._released.set()
            server.shutdown()
            server.server_close()

    def release(self) -> None:
        """Let held (HANG) requests end without an answer."""
        self._released.set()

    def __enter__(self) -> "ForwardReceiver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """Its TCP port on 127.0.0.1."""
        return self._port

    def url(self, path: str = "/kie-callback") -> str:
        """A URL that reaches it."""
        return f"http://127.0.0.1:{self._port}{path}"

    # ------------------------------------------------------------------ requests
    def _record(self, path: str, headers: dict[str, str], body: bytes) -> Received:
        now = self.clock()
        verified, reason, task_id = verify(self.key, headers, body, now, self.tolerance)
        received = Received(path, headers, body, verified, reason, task_id, now)
        with self._lock:
            self.received.append(received)
        if self.out is not None:
            self._print(received)
        return received

    def _print(self, received: Received) -> None:
        assert self.out is not None
        verdict = "signature verified" if received.verified else f"signature REFUSED: {received.reason}"
        try:
            document = received.json().get("kie2s3")
        except (ValueError, AttributeError):
            document = None
        print(
            f"[forward receiver] POST {received.path.split('?', 1)[0]}  task {received.task_id}  {verdict}",
            file=self.out,
        )
        if document is not None:
            print(json.dumps({"kie2s3": document}, indent=2), file=self.out)
        self.out.flush()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                received = receiver._record(self.path, headers, body)
                answer = receiver.answer
                if answer == HANG:
                    receiver._released.wait(60)
                    self.close_connection = True
                    return
                if isinstance(answer, tuple):
                    self.send_response(302)
                    self.send_header("Location", answer[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = answer if isinstance(answer, int) else 200 if received.verified else 401
                reply = receiver.reply if status == 200 else b'{"error":"refused"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST  # a redirect followed as a GET would be seen too

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until Ctrl-C, printing every forwarded callback."""
    from devstack.stack import FORWARD_HMAC_KEY

    parser = Parser(prog="devstack.forward_receiver", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="on 127.0.0.1 (0: any free one)")
    parser.add_argument(
        "--key", default=FORWARD_HMAC_KEY, help="the forwarding key (default: the local stack's)"
    )
    parser.add_argument(
        "--tolerance", type=int, default=300, help="WEBHOOK_TOLERANCE_SECONDS it verifies with"
    )
    args = parser.parse_args(argv)
    receiver = ForwardReceiver(args.key, port=args.port, tolerance=args.tolerance, out=sys.stdout)
    print(f"forward receiver on {receiver.url()} (any path): Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
