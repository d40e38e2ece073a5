"""A fake EC2 instance metadata service, IMDSv2 with HttpTokens=required, for tests.

In a test:

    with FakeImds() as imds:                  # listens on 127.0.0.1, a free port
        imds.url                              # http://127.0.0.1:PORT
        imds.set_spot_action("terminate", "2026-12-06T01:02:03Z")
        imds.set_rebalance("2026-12-06T00:58:00Z")
        imds.fail_next(2, 500)                # the next 2 IMDS requests answer 500
        imds.expire_tokens()                  # every token issued so far is now invalid
        imds.requests                         # [Request(method, path, headers, status)]

As a program, for a container test driven with curl:

    python tests/fake_imds.py --host 0.0.0.0 --port 1338 [--verbose]

with a control API under /_fake/ (no token; never recorded as a request):

    PUT    /_fake/spot/instance-action            {"action": "terminate", "time": "..."}
    DELETE /_fake/spot/instance-action
    PUT    /_fake/events/recommendations/rebalance  {"noticeTime": "..."}
    DELETE /_fake/events/recommendations/rebalance
    POST   /_fake/fail                            {"count": 2, "status": 500}
    POST   /_fake/expire-tokens
    GET    /_fake/requests                        (JSON list)     DELETE clears it

It is no kinder than the real service with tokens required:

- PUT /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds, an integer from 1
  to 21600, else 400; the token it returns expires after that many seconds.
- Any request with X-Forwarded-For is refused with 403.
- A GET (or HEAD) without a valid, unexpired X-aws-ec2-metadata-token gets 401, before
  the path is looked at; another method on a metadata path gets 405, as does anything
  but PUT on the token path.
- spot/instance-action and spot/termination-time (for "terminate") exist only while a
  notice is set, events/recommendations/rebalance only while a recommendation is;
  otherwise they, and any unknown path, are 404. A directory answers its listing.
- Errors come with an HTML body and text/html, answers with text/plain, as EC2's do.
- The spot action is one of terminate, stop, hibernate and times are written as EC2
  writes them (2026-12-06T01:02:03Z); anything else is refused (ValueError, or 400).
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a URL path, not a secret
META_DATA = "/latest/meta-data"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 - a header name
MAX_TTL_SECONDS = 21600
CONTROL = "/_fake/"
SPOT_ACTIONS = ("terminate", "stop", "hibernate")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

Answer = tuple[int, str, dict[str, str]]


@dataclass(frozen=True)
class Request:
    """One IMDS request as the fake saw it; header names in lower case."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


def ec2_time(text: str) -> str:
    """text if it is a time as EC2 writes it (2026-12-06T01:02:03Z), else ValueError."""
    datetime.strptime(text, TIME_FORMAT)
    return text


def error_page(status: int) -> str:
    """The HTML body EC2's metadata service sends with an error."""
    title = f"{status} - {HTTPStatus(status).phrase}"
    return (
        '<?xml version="1.0" encoding="iso-8859-1"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
        '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
        f" <head>\n  <title>{title}</title>\n </head>\n"
        f" <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
    )


def error(status: int, headers: dict[str, str] | None = None) -> Answer:
    return status, error_page(status), {"Content-Type": "text/html", **(headers or {})}


def text(body: str, headers: dict[str, str] | None = None) -> Answer:
    return HTTPStatus.OK, body, {"Content-Type": "text/plain", **(headers or {})}


class FakeImds:
    """The fake service: its state, the answer to each request, and its HTTP server."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        self.verbose = verbose
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}  # token -> when it expires
        self.spot_action: dict[str, str] | None = None
        self.rebalance: dict[str, str] | None = None
        self.failures: list[int] = []
        self.requests: list[Request] = []
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.static = {
            "ami-id": "ami-0123456789abcdef0",
            "instance-id": "i-0123456789abcdef0",
            "instance-type": "c5.xlarge",
            "instance-life-cycle": "spot",
            "local-hostname": "ip-10-0-1-11.ec2.internal",
            "local-ipv4": "10.0.1.11",
            "placement/availability-zone": "us-east-1a",
            "placement/region": "us-east-1",
            "events/maintenance/scheduled": "[]",
            "events/maintenance/history": "[]",
        }

    # --- what a test sets -------------------------------------------------------------

    def set_spot_action(self, action: str, time_text: str) -> None:
        """An interruption notice, as EC2 posts it two minutes ahead."""
        if action not in SPOT_ACTIONS:
            raise ValueError(f"not a spot action: {action!r}")
        with self.lock:
            self.spot_action = {"action": action, "time": ec2_time(time_text)}

    def clear_spot_action(self) -> None:
        with self.lock:
            self.spot_action = None

    def set_rebalance(self, notice_time: str) -> None:
        """A rebalance recommendation."""
        with self.lock:
            self.rebalance = {"noticeTime": ec2_time(notice_time)}

    def clear_rebalance(self) -> None:
        with self.lock:
            self.rebalance = None

    def fail_next(self, count: int, status: int = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        """The next `count` IMDS requests, whatever they are, answer `status` (4xx/5xx)."""
        if not 400 <= status <= 599 or count < 0:
            raise ValueError(f"not an error count and status: {count}, {status}")
        with self.lock:
            self.failures.extend([int(status)] * count)

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def expire_tokens(self) -> None:
        """Every token issued so far is invalid from now on (as after its TTL)."""
        with self.lock:
            self.tokens.clear()

    # --- the service ------------------------------------------------------------------

    def metadata(self) -> dict[str, str]:
        """Every metadata item now, by its path under /latest/meta-data/."""
        items = dict(self.static)
        if self.spot_action is not None:
            items["spot/instance-action"] = json.dumps(self.spot_action)
            if self.spot_action["action"] == "terminate":
                items["spot/termination-time"] = self.spot_action["time"]
        if self.rebalance is not None:
            items["events/recommendations/rebalance"] = json.dumps(self.rebalance)
        return items

    def answer(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        """The status, body and headers for one IMDS request; it is recorded."""
        with self.lock:
            status, body, extra = self.decide(method, path.split("?", 1)[0], headers)
            self.requests.append(Request(method, path, dict(headers), int(status)))
        return status, body, extra

    def decide(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        if self.failures:
            return error(self.failures.pop(0))
        if "x-forwarded-for" in headers:
            return error(HTTPStatus.FORBIDDEN)
        if path == TOKEN_PATH:
            if method != "PUT":
                return error(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "PUT"})
            return self.issue_token(headers.get(TTL_HEADER))
        return self.read(method, path, headers)

    def read(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        """A metadata request: the method, then the token, then the path."""
        if method not in ("GET", "HEAD"):
            return error(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})
        expires = self.tokens.get(headers.get(TOKEN_HEADER, ""))
        if expires is None or self.clock() >= expires:
            return error(HTTPStatus.UNAUTHORIZED)
        if path != META_DATA and not path.startswith(META_DATA + "/"):
            return error(HTTPStatus.NOT_FOUND)
        return self.lookup(path[len(META_DATA) :].strip("/"))

    def issue_token(self, ttl_text: str | None) -> Answer:
        try:
            ttl = int(ttl_text or "")
        except ValueError:
            return error(HTTPStatus.BAD_REQUEST)
        if not 1 <= ttl <= MAX_TTL_SECONDS:
            return error(HTTPStatus.BAD_REQUEST)
        token = secrets.token_urlsafe(42)
        self.tokens[token] = self.clock() + ttl
        return text(token, {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})

    def lookup(self, key: str) -> Answer:
        """An item's value, or a directory's listing (subdirectories end with /)."""
        items = self.metadata()
        if key in items:
            return text(items[key])
        prefix = f"{key}/" if key else ""
        children = set()
        for name in items:
            if name.startswith(prefix):
                first, slash, rest = name[len(prefix) :].partition("/")
                children.add(first + ("/" if slash and rest else ""))
        return text("\n".join(sorted(children))) if children else error(HTTPStatus.NOT_FOUND)

    def control(self, method: str, path: str, body: bytes) -> Answer:
        """The /_fake/ API of the script: the same settings over HTTP."""
        name = path[len(CONTROL) :].split("?", 1)[0]
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError("a JSON object is expected")
            self.apply(method, name, data)
        except (ValueError, KeyError, TypeError) as exc:
            return HTTPStatus.BAD_REQUEST, f"{exc}\n", {"Content-Type": "text/plain"}
        if method == "GET" and name == "requests":
            with self.lock:
                listed = [asdict(request) for request in self.requests]
            return HTTPStatus.OK, json.dumps(listed), {"Content-Type": "application/json"}
        return HTTPStatus.NO_CONTENT, "", {}

    def apply(self, method: str, name: str, data: dict[str, Any]) -> None:
        actions: dict[tuple[str, str], Callable[[], None]] = {
            ("PUT", "spot/instance-action"): lambda: self.set_spot_action(
                data["action"], data["time"]
            ),
            ("DELETE", "spot/instance-action"): self.clear_spot_action,
            ("PUT", "events/recommendations/rebalance"): lambda: self.set_rebalance(
                data["noticeTime"]
            ),
            ("DELETE", "events/recommendations/rebalance"): self.clear_rebalance,
            ("POST", "fail"): lambda: self.fail_next(
                int(data.get("count", 1)), int(data.get("status", 500))
            ),
            ("POST", "expire-tokens"): self.expire_tokens,
            ("GET", "requests"): lambda: None,
            ("DELETE", "requests"): self.clear_requests,
        }
        if (method, name) not in actions:
            raise ValueError(f"no such control: {method} {CONTROL}{name}")
        actions[(method, name)]()

    # --- the server -------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the fake IMDS is not started")
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Listen (port 0: a free one) and serve in a thread; the base URL."""
        server = ImdsServer((self.host, self.port), ImdsHandler)
        server.fake = self
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-imds", daemon=True
        )
        self.thread.start()
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.server = self.thread = None

    def __enter__(self) -> FakeImds:
        if self.server is None:
            self.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()


class ImdsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeImds


class ImdsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"
    sys_version = ""
    server: ImdsServer

    def do_GET(self) -> None:
        self.dispatch()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    def dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        fake = self.server.fake
        if self.path.startswith(CONTROL):
            status, payload, headers = fake.control(self.command, self.path, body)
        else:
            lowered = {name.lower(): value for name, value in self.headers.items()}
            status, payload, headers = fake.answer(self.command, self.path, lowered)
        data = payload.encode("utf-8")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        if self.server.fake.verbose:
            super().log_message(*args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=1338, help="port (1338; 0: a free one)")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server thread starts (it inherits the mask), then waited for:
    # this works as a container's PID 1 too, where a default SIGTERM is ignored.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    fake = FakeImds(host=args.host, port=args.port, verbose=args.verbose)
    print(f"fake IMDS listening on {fake.start()}", flush=True)
    received = signal.sigwait(signals)
    fake.stop()
    print(f"fake IMDS stopped on {signal.Signals(received).name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
