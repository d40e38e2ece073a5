"""Watch EC2's instance metadata for a spot interruption and take this node out of SGE.

Run on every compute node by systemd, with Debian's own python (standard library only):

    /usr/bin/python3 segway_spot_watch.py [--interval 5] [--host NAME]
        [--action COMMAND ...] [--state PATH] [--endpoint URL] [--ignore-rebalance] [--once]

Why. Segway runs each GMTK step as an SGE job through DRMAA, and its DRMAA client
resubmits a failed job once only, so a job that loses its node twice fails the whole
Segway run. EC2 warns two minutes before it interrupts a spot instance; on that
warning this program disables the node's queue instances (no new job is sent here)
and reschedules the jobs running on them (SGE puts them back in the pending list
under the same job id, so DRMAA sees no failure at all), while the node is still
alive to be asked. By default it does the same on a rebalance
recommendation, EC2's earlier and softer hint that the instance is at elevated risk.

The default commands are

    qmod -d *@{host}     (disable every queue instance on this host)
    qmod -rq *@{host}    (reschedule the jobs running in them)

Each --action replaces them all with one command of yours: a string split as a shell
would (shlex; no shell runs it, so `*` is not expanded), repeatable, run in the given
order. In every word, {host} becomes --host (default: the short hostname), {kind}
"spot-interruption" or "rebalance", {action} the notice's action (terminate, stop,
hibernate; "rebalance" for a recommendation) and {time} its time as EC2 wrote it.

Privileges: SGE lets a manager or operator (qconf -am / -ao), or root, qmod another
user's queue instances and jobs only from an administrative host (qconf -ah), and
qmod -rq needs manager or operator privileges in any case. A compute node is an
execution host, normally not an administrative one, so either make it one and run
this program as a manager, or have each --action run qmod on the master, e.g.
--action "ssh master qmod -d '*@{host}'" (the remote shell would otherwise expand the
`*`). qmod -rq reschedules a job only if the job or its queue has the rerun flag
(qsub -r y, or `rerun TRUE` in queue_conf); Segway's native specification does not
ask for it, so the queue must (roles/sge's sge_queue_rerun, true by default). qmod
also needs SGE's environment (SGE_ROOT, SGE_CELL) where it runs.

Each command runs with a timeout (--command-timeout); its exit code and output are
logged. A command that fails does not stop the next one (disabling the queue and
rescheduling its jobs are each worth doing alone); on the next poll only the commands
of that notice that failed run again, until every one has succeeded or the notice's
time has passed (for a rebalance recommendation, its noticeTime plus 10 minutes); they
always run at least once. The notice is then remembered as "done" or "gave-up".

IMDSv2, as this program speaks it (--endpoint, else the environment variable
AWS_EC2_METADATA_SERVICE_ENDPOINT as botocore reads it, else http://169.254.169.254):

    PUT /latest/api/token   X-aws-ec2-metadata-token-ttl-seconds: 21600  -> the token
    GET /latest/meta-data/spot/instance-action            X-aws-ec2-metadata-token: TOKEN
        404: no notice; 200: {"action": "terminate", "time": "2026-12-06T01:02:03Z"}
    GET /latest/meta-data/events/recommendations/rebalance   (same header)
        404: none; 200: {"noticeTime": "2026-12-06T00:58:00Z"}

The token is reused until 5 minutes before its 6 hours run out, and fetched again at
once when a GET answers 401. Every request has a short timeout (--http-timeout); an
IMDS that does not answer, refuses or errs is logged (once, then again only when the
error changes or the service recovers) and asked again on the next poll. When no
token can be had, the poll asks nothing more.

State. The notices handled are kept in a JSON file (--state, default
/var/lib/segway-spot-watch/state.json; its directory is created), written atomically
(a temporary file in the same directory, fsync, rename). A restart of the service
therefore does not run the commands again for a notice already handled, and a new
notice (another action or time) is acted on again.

Output: one line per event on stdout (systemd's journal keeps it): start, IMDS reached,
notice seen, each command with its exit code, IMDS errors and recovery, stop.
SIGTERM and SIGINT end the program between two polls, with exit code 0.

--once polls once and exits: 0 no notice, or every notice handled (now or before);
1 a command failed; 2 the IMDS could not be read (and no command failed). A usage
error also exits 2, as argparse does.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "http://169.254.169.254"
ENDPOINT_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a URL path, not a secret
SPOT_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 - a header name
TOKEN_TTL_SECONDS = 21600
TOKEN_RENEW_BEFORE_SECONDS = 300

DEFAULT_INTERVAL = 5.0
DEFAULT_HTTP_TIMEOUT = 2.0
DEFAULT_COMMAND_TIMEOUT = 30.0
DEFAULT_STATE = "/var/lib/segway-spot-watch/state.json"
DEFAULT_ACTIONS = ("qmod -d *@{host}", "qmod -rq *@{host}")
REBALANCE_RETRY_SECONDS = 600.0
KEPT_NOTICES = 100
LOGGED_OUTPUT_CHARS = 400
STATE_VERSION = 1

SPOT = "spot-interruption"
REBALANCE = "rebalance"
DONE = "done"
GAVE_UP = "gave-up"

EXIT_OK = 0
EXIT_COMMAND_FAILED = 1
EXIT_IMDS_ERROR = 2

PLACEHOLDER = re.compile(r"\{(host|kind|action|time)\}")

Fetch = Callable[[str, str, Mapping[str, str], float], tuple[int, str]]


@dataclass(frozen=True)
class Notice:
    """One notice from the IMDS: a spot interruption or a rebalance recommendation."""

    kind: str
    action: str
    time: str

    @property
    def key(self) -> str:
        """What the state file remembers: another action or time is another notice."""
        return f"{self.kind}/{self.action}/{self.time}"

    def describe(self) -> str:
        return f"{self.kind} action={self.action} time={self.time or '?'}"


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str


class ImdsError(Exception):
    """The IMDS could not be read; the message names the request and what went wrong.

    unreachable: no answer at all, or no token; asking for another path now is futile.
    """

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


# --- pure functions ---------------------------------------------------------------------


def parse_spot_action(body: str) -> Notice:
    """The notice in a 200 from spot/instance-action.

    A 200 there means an interruption is coming, so a body that is not the JSON EC2
    documents still makes a notice (action "unknown", the body as its time) rather
    than none.
    """
    data = load_json_object(body)
    if data is None:
        return Notice(SPOT, "unknown", " ".join(body.split())[:100])
    return Notice(SPOT, str(data.get("action", "unknown")), str(data.get("time", "")))


def parse_rebalance(body: str) -> Notice:
    """The notice in a 200 from events/recommendations/rebalance."""
    data = load_json_object(body)
    if data is None:
        return Notice(REBALANCE, REBALANCE, " ".join(body.split())[:100])
    return Notice(REBALANCE, REBALANCE, str(data.get("noticeTime", "")))


def load_json_object(body: str) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_time(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 time such as 2026-12-06T01:02:03Z."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def notice_deadline(notice: Notice) -> float | None:
    """Until when a failing command is tried again: the interruption's time, or a
    rebalance recommendation's time plus REBALANCE_RETRY_SECONDS; None if unreadable."""
    moment = parse_time(notice.time)
    if moment is None:
        return None
    return moment + (REBALANCE_RETRY_SECONDS if notice.kind == REBALANCE else 0.0)


def notices_to_act_on(
    notices: Iterable[Notice], handled: Mapping[str, object], act_on_rebalance: bool
) -> list[Notice]:
    """The notices whose commands should run now: not handled yet, and a rebalance
    recommendation only when asked to act on those."""
    return [
        notice
        for notice in notices
        if notice.key not in handled and (act_on_rebalance or notice.kind != REBALANCE)
    ]


def render_command(template: str, host: str, notice: Notice) -> list[str]:
    """The argv of one --action: split as a shell would, then the placeholders filled
    in each word (so a value can never split or add a word)."""
    values = {"host": host, "kind": notice.kind, "action": notice.action, "time": notice.time}
    return [
        PLACEHOLDER.sub(lambda match: values[match.group(1)], word)
        for word in shlex.split(template)
    ]


def one_line(text: str, limit: int = LOGGED_OUTPUT_CHARS) -> str:
    """A command's output on one log line: lines joined with ' | ', cut at limit."""
    joined = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def short_hostname() -> str:
    return socket.gethostname().split(".", maxsplit=1)[0]


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def describe_error(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# --- the outside world: HTTP, commands, the state file ----------------------------------


def http_fetch(
    method: str, url: str, headers: Mapping[str, str], timeout: float
) -> tuple[int, str]:
    """One HTTP request, straight to the endpoint (no proxy, no redirect): (status, body).

    Raises OSError (refused, timed out, reset) or http.client.HTTPException.
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port or 443, timeout=timeout
        )
    else:
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port or 80, timeout=timeout
        )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(method, target, headers=dict(headers))
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        connection.close()


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run one command, stdout and stderr together; a command that cannot start or
    times out is a failure (127, 126 or 124, as a shell would say), not an exception."""
    try:
        completed = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        return CommandResult(127, describe_error(exc))
    except subprocess.TimeoutExpired:
        return CommandResult(124, f"timed out after {timeout:g} s")
    except OSError as exc:
        return CommandResult(126, describe_error(exc))
    return CommandResult(completed.returncode, completed.stdout or "")


def load_state(path: str) -> tuple[dict[str, dict[str, str]], str | None]:
    """The handled notices in the state file, and what was wrong with it (None if
    nothing). A missing file is an empty state; an unreadable one too, with a reason."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as exc:
        return {}, f"cannot read {path}: {describe_error(exc)}"
    handled = data.get("handled") if isinstance(data, dict) else None
    if not isinstance(handled, dict) or data.get("version") != STATE_VERSION:
        return {}, f"cannot read {path}: not a version {STATE_VERSION} state file"
    return {str(key): value for key, value in handled.items() if isinstance(value, dict)}, None


def save_state(path: str, handled: Mapping[str, Mapping[str, str]]) -> None:
    """Write the state file atomically: a temporary file beside it, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump({"version": STATE_VERSION, "handled": handled}, stream, indent=2)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


def newest(handled: dict[str, dict[str, str]], keep: int) -> dict[str, dict[str, str]]:
    """The `keep` most recently handled notices (the state file stays small)."""
    ordered = sorted(handled.items(), key=lambda item: str(item[1].get("at", "")))
    return dict(ordered[-keep:])


def print_line(message: str) -> None:
    print(message, flush=True)


# --- IMDSv2 -----------------------------------------------------------------------------


class ImdsClient:
    """GETs from the IMDS with an IMDSv2 session token, kept until shortly before it
    expires and fetched again on a 401."""

    def __init__(
        self,
        endpoint: str,
        fetch: Fetch = http_fetch,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
    ) -> None:
        self.base = endpoint.rstrip("/")
        self.fetch = fetch
        self.clock = clock
        self.timeout = timeout
        self.token: str | None = None
        self.token_expires = 0.0

    def request(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, str]:
        try:
            return self.fetch(method, self.base + path, headers, self.timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise ImdsError(f"{method} {path}: {describe_error(exc)}", unreachable=True) from exc

    def current_token(self) -> str:
        now = self.clock()
        if self.token is None or now >= self.token_expires - TOKEN_RENEW_BEFORE_SECONDS:
            status, body = self.request("PUT", TOKEN_PATH, {TTL_HEADER: str(TOKEN_TTL_SECONDS)})
            if status != HTTPStatus.OK or not body.strip():
                raise ImdsError(f"PUT {TOKEN_PATH}: HTTP {status}", unreachable=True)
            self.token = body.strip()
            self.token_expires = now + TOKEN_TTL_SECONDS
        return self.token

    def get(self, path: str) -> str | None:
        """The body of a 200, None for a 404; ImdsError for anything else."""
        status, body = self.request("GET", path, {TOKEN_HEADER: self.current_token()})
        if status == HTTPStatus.UNAUTHORIZED:  # expired or revoked: one new token, once
            self.token = None
            status, body = self.request("GET", path, {TOKEN_HEADER: self.current_token()})
        if status == HTTPStatus.OK:
            return body
        if status == HTTPStatus.NOT_FOUND:
            return None
        raise ImdsError(f"GET {path}: HTTP {status}")


# --- the watcher ------------------------------------------------------------------------


class Watcher:
    """Polls the IMDS and runs the commands once per notice; see the module docstring.

    fetch, run, clock, sleep and log are the outside world, replaceable in tests.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        host: str,
        state_path: str,
        actions: Sequence[str] = DEFAULT_ACTIONS,
        act_on_rebalance: bool = True,
        interval: float = DEFAULT_INTERVAL,
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        fetch: Fetch = http_fetch,
        run: Callable[[Sequence[str], float], CommandResult] = run_command,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = print_line,
    ) -> None:
        self.endpoint = endpoint
        self.host = host
        self.state_path = state_path
        self.actions = list(actions)
        self.act_on_rebalance = act_on_rebalance
        self.interval = interval
        self.command_timeout = command_timeout
        self.imds = ImdsClient(endpoint, fetch=fetch, clock=clock, timeout=http_timeout)
        self.run = run
        self.clock = clock
        self.sleep = sleep
        self.log = log
        self.handled, self.state_problem = load_state(state_path)
        self.succeeded: dict[str, set[int]] = {}  # notice key -> commands that succeeded
        self.seen: set[str] = set()
        self.last_error: str | None = None
        self.reached = False
        self.stop_reason: str | None = None

    def request_stop(self, reason: str) -> None:
        """End the loop after the current poll (from a signal handler)."""
        self.stop_reason = reason

    def read_notices(self) -> tuple[list[Notice], list[str]]:
        """The notices the IMDS shows now, and the errors met reading them."""
        notices: list[Notice] = []
        errors: list[str] = []
        sources = [(SPOT_PATH, parse_spot_action)]
        if self.act_on_rebalance:
            sources.append((REBALANCE_PATH, parse_rebalance))
        for path, parse in sources:
            try:
                body = self.imds.get(path)
            except ImdsError as exc:
                errors.append(str(exc))
                if exc.unreachable:
                    break
                continue
            if body is not None:
                notices.append(parse(body))
        return notices, errors

    def poll(self) -> int:
        """One look at the IMDS, and the commands for any new notice; an exit code."""
        notices, errors = self.read_notices()
        self.report_imds(errors)
        for notice in notices:
            if notice.key not in self.seen:
                self.seen.add(notice.key)
                earlier = self.handled.get(notice.key)
                note = ""
                if earlier:
                    note = f" (handled before: {earlier.get('outcome')} at {earlier.get('at')})"
                self.log(f"notice: {notice.describe()}{note}")
        failed = False
        for notice in notices_to_act_on(notices, self.handled, self.act_on_rebalance):
            if not self.handle(notice):
                failed = True
        if failed:
            return EXIT_COMMAND_FAILED
        return EXIT_IMDS_ERROR if errors else EXIT_OK

    def report_imds(self, errors: list[str]) -> None:
        """Log an IMDS error once, then only when it changes or clears."""
        if errors:
            message = "; ".join(errors)
            if message != self.last_error:
                self.log(f"IMDS error: {message} (asking again every {self.interval:g} s)")
                self.last_error = message
            return
        if self.last_error is not None:
            self.log(f"IMDS reachable again at {self.endpoint}")
        elif not self.reached:
            self.log(f"IMDS reachable at {self.endpoint}")
        self.last_error = None
        self.reached = True

    def handle(self, notice: Notice) -> bool:
        """Run the commands of a notice not yet handled (those that have not succeeded
        yet); True when every one has succeeded."""
        succeeded = self.succeeded.setdefault(notice.key, set())
        for index, template in enumerate(self.actions):
            if index in succeeded:
                continue
            argv = render_command(template, self.host, notice)
            result = self.run(argv, self.command_timeout)
            output = one_line(result.output)
            self.log(
                f"command: {shlex.join(argv)} rc={result.returncode}"
                + (f" output: {output}" if output else "")
            )
            if result.returncode == 0:
                succeeded.add(index)
        if len(succeeded) == len(self.actions):
            self.remember(notice, DONE)
            return True
        deadline = notice_deadline(notice)
        if deadline is not None and self.clock() >= deadline:
            self.log(f"giving up on {notice.describe()}: a command still fails past its time")
            self.remember(notice, GAVE_UP)
        return False

    def remember(self, notice: Notice, outcome: str) -> None:
        self.succeeded.pop(notice.key, None)
        self.handled[notice.key] = {
            "kind": notice.kind,
            "action": notice.action,
            "time": notice.time,
            "outcome": outcome,
            "at": timestamp(self.clock()),
        }
        self.handled = newest(self.handled, KEPT_NOTICES)
        try:
            save_state(self.state_path, self.handled)
        except OSError as exc:
            self.log(f"cannot write {self.state_path}: {describe_error(exc)}")
        else:
            self.log(f"handled: {notice.describe()} outcome={outcome}")

    def run_loop(self, once: bool = False) -> int:
        """Poll every interval until stopped (exit code 0), or once (its exit code)."""
        rebalance = "act" if self.act_on_rebalance else "ignore"
        self.log(
            f"started: endpoint={self.endpoint} host={self.host} interval={self.interval:g}s"
            f" rebalance={rebalance} state={self.state_path}"
            f" actions={' ; '.join(self.actions)}"
        )
        if self.state_problem:
            self.log(f"state: {self.state_problem}; starting with no notice handled")
        while self.stop_reason is None:
            code = self.poll()
            if once:
                return code
            if self.stop_reason is None:
                self.sleep(self.interval)
        self.log(f"stopping on {self.stop_reason}")
        return EXIT_OK


class StopOnSignal:
    """SIGTERM and SIGINT ask the watcher to stop; a sleep between polls ends at once.

    The handlers only set a flag, so a command or a state write in progress completes;
    Python's wakeup file descriptor makes the select() of sleep() return on a signal,
    even one that arrives just before it starts. The previous handlers are restored on
    exit.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.read_fd = self.write_fd = self.previous_fd = -1
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self.previous_fd = signal.set_wakeup_fd(self.write_fd)
        self.previous = {signum: signal.signal(signum, self.handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *_exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self.previous_fd)
        os.close(self.read_fd)
        os.close(self.write_fd)

    def handle(self, signum: int, _frame: object) -> None:
        self.watcher.request_stop(signal.Signals(signum).name)

    def sleep(self, seconds: float) -> None:
        if self.watcher.stop_reason is None:
            select.select([self.read_fd], [], [], seconds)
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 512):
                pass


# --- command line -----------------------------------------------------------------------


def positive_seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:  # NaN and inf too
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit codes with --once: 0 nothing to do, 1 a command failed, 2 IMDS error.",
    )
    parser.add_argument(
        "--interval", type=positive_seconds, default=DEFAULT_INTERVAL, help="seconds (5)"
    )
    parser.add_argument(
        "--endpoint",
        default=os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT,
        help=f"IMDS URL (${ENDPOINT_ENV}, else {DEFAULT_ENDPOINT})",
    )
    parser.add_argument(
        "--host", default=short_hostname(), help="the {host} of the commands (the short hostname)"
    )
    parser.add_argument(
        "--action",
        action="append",
        dest="actions",
        metavar="COMMAND",
        help="a command to run on a notice, repeatable (default: "
        + "; ".join(DEFAULT_ACTIONS)
        + ")",
    )
    parser.add_argument("--state", default=DEFAULT_STATE, help=f"state file ({DEFAULT_STATE})")
    parser.add_argument(
        "--ignore-rebalance",
        action="store_true",
        help="act on spot interruption notices only, not on rebalance recommendations",
    )
    parser.add_argument("--once", action="store_true", help="poll once and exit")
    parser.add_argument(
        "--http-timeout", type=positive_seconds, default=DEFAULT_HTTP_TIMEOUT, help="seconds (2)"
    )
    parser.add_argument(
        "--command-timeout",
        type=positive_seconds,
        default=DEFAULT_COMMAND_TIMEOUT,
        help="seconds (30)",
    )
    args = parser.parse_args(argv)
    parts = urlsplit(args.endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"--endpoint: not an http(s) URL: {args.endpoint}")
    args.actions = args.actions or list(DEFAULT_ACTIONS)
    for action in args.actions:
        try:
            words = shlex.split(action)
        except ValueError as exc:
            parser.error(f"--action {action!r}: {exc}")
        if not words:
            parser.error("--action: an empty command")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    watcher = Watcher(
        endpoint=args.endpoint,
        host=args.host,
        state_path=args.state,
        actions=args.actions,
        act_on_rebalance=not args.ignore_rebalance,
        interval=args.interval,
        http_timeout=args.http_timeout,
        command_timeout=args.command_timeout,
    )
    with StopOnSignal(watcher) as stopper:
        watcher.sleep = stopper.sleep
        return watcher.run_loop(once=args.once)


if __name__ == "__main__":
    sys.exit(main())
