"""roles/sge/files/segway_spot_watch.py against a fake IMDSv2 over real HTTP.

The program is imported by path (it is a file the role copies to each compute node,
not a module of the collection) and run, in this process or as Debian's python3
would run it, against tests/fake_imds.py listening on 127.0.0.1. The action commands
are real processes: a small script that appends its argv, as JSON, to a file in the
test's directory, and fails while a counter file says so. What is asserted is what
happened: which commands ran, in which order, with which words, how often; which
requests reached the IMDS with which token; what the state file holds; exit codes.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]
PROGRAM = REPO / "roles" / "sge" / "files" / "segway_spot_watch.py"
DEBIAN_PYTHON = Path("/usr/bin/python3")


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


watch = load("segway_spot_watch", PROGRAM)
fake_imds = load("fake_imds", REPO / "tests" / "fake_imds.py")

RECORDER = """\
import json, pathlib, sys
here = pathlib.Path(__file__).parent
with open(here / "calls.jsonl", "a") as stream:
    stream.write(json.dumps(sys.argv[1:]) + "\\n")
fail = here / "fail.json"
plan = json.loads(fail.read_text()) if fail.exists() else {"count": 0, "word": None}
if plan["count"] > 0 and (plan["word"] is None or plan["word"] in sys.argv[1:]):
    plan["count"] -= 1
    fail.write_text(json.dumps(plan))
    print("refused by the test", file=sys.stderr)
    sys.exit(3)
"""

DEFAULT_SHAPED = [["qmod", "-d", "*@node007"], ["qmod", "-rq", "*@node007"]]


def ec2_time(seconds_from_now: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Node:
    """A test's compute node: the recorder, its calls, the state file, the options."""

    def __init__(self, tmp_path: Path, python: str = sys.executable) -> None:
        self.dir = tmp_path
        self.recorder = tmp_path / "record.py"
        self.recorder.write_text(RECORDER)
        self.python = python
        self.state = tmp_path / "var" / "lib" / "segway-spot-watch" / "state.json"

    def action(self, words: str) -> str:
        return f"{shlex.quote(self.python)} {shlex.quote(str(self.recorder))} {words}"

    @property
    def actions(self) -> list[str]:
        """The default commands' shape, through the recorder."""
        return [self.action("qmod -d '*@{host}'"), self.action("qmod -rq '*@{host}'")]

    def argv(self, endpoint: str | None, *extra: str) -> list[str]:
        args = ["--once", "--host", "node007", "--state", str(self.state), "--interval", "0.05"]
        if endpoint is not None:
            args += ["--endpoint", endpoint]
        for action in self.actions:
            args += ["--action", action]
        return [*args, *extra]

    def watcher(self, endpoint: str, **options: object):
        logged: list[str] = []
        settings: dict[str, object] = {
            "endpoint": endpoint,
            "host": "node007",
            "state_path": str(self.state),
            "actions": self.actions,
            "interval": 0.05,
            "log": logged.append,
        }
        settings.update(options)
        watcher = watch.Watcher(**settings)
        watcher.logged = logged
        return watcher

    def calls(self) -> list[list[str]]:
        path = self.dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def fail_next(self, count: int, word: str | None = None) -> None:
        """The next `count` commands fail (those with `word` among their arguments)."""
        (self.dir / "fail.json").write_text(json.dumps({"count": count, "word": word}))

    def handled(self) -> dict[str, dict[str, str]]:
        return json.loads(self.state.read_text())["handled"]


@pytest.fixture
def imds() -> Iterator:
    with fake_imds.FakeImds() as server:
        yield server


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def paths(imds) -> list[tuple[str, str, int]]:
    return [(request.method, request.path, request.status) for request in imds.requests]


# --- the program against the fake, in this process --------------------------------------


def test_no_notice_runs_nothing(imds, node: Node, capsys) -> None:
    assert watch.main(node.argv(imds.url)) == 0
    assert node.calls() == []
    assert not node.state.exists()
    assert paths(imds) == [
        ("PUT", "/latest/api/token", 200),
        ("GET", "/latest/meta-data/spot/instance-action", 404),
        ("GET", "/latest/meta-data/events/recommendations/rebalance", 404),
    ]
    token_put, *gets = imds.requests
    assert token_put.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    tokens = {get.headers["x-aws-ec2-metadata-token"] for get in gets}
    assert len(tokens) == 1
    assert tokens <= set(imds.tokens)  # the one the fake issued
    out = capsys.readouterr().out
    assert "started:" in out
    assert "notice:" not in out


def test_spot_notice_runs_both_commands_once_in_order(imds, node: Node) -> None:
    imds.set_spot_action("terminate", ec2_time(120))
    watcher = node.watcher(imds.url)
    assert watcher.poll() == 0
    assert node.calls() == DEFAULT_SHAPED
    assert watcher.poll() == 0
    assert watcher.poll() == 0
    assert node.calls() == DEFAULT_SHAPED  # not again
    (entry,) = node.handled().values()
    assert entry["outcome"] == "done"
    assert entry["action"] == "terminate"
    assert sum("notice: spot-interruption action=terminate" in line for line in watcher.logged) == 1


def test_restart_does_not_repeat_and_a_new_notice_acts_again(imds, node: Node) -> None:
    first = ec2_time(120)
    imds.set_spot_action("stop", first)
    assert watch.main(node.argv(imds.url)) == 0
    assert node.calls() == DEFAULT_SHAPED
    # A restart of the service: a new process reads the state file.
    restarted = node.watcher(imds.url)
    assert restarted.poll() == 0
    assert watch.main(node.argv(imds.url)) == 0
    assert node.calls() == DEFAULT_SHAPED
    assert any("handled before: done" in line for line in restarted.logged)
    # Another notice (another time): acted on again, and both are remembered.
    imds.set_spot_action("stop", ec2_time(300))
    assert watch.main(node.argv(imds.url)) == 0
    assert node.calls() == DEFAULT_SHAPED * 2
    assert len(node.handled()) == 2
    assert sorted(os.listdir(node.state.parent)) == ["state.json"]  # no temporary left


def test_placeholders_fill_words_without_splitting_them(imds, node: Node) -> None:
    notice_time = ec2_time(120)
    imds.set_spot_action("hibernate", notice_time)
    watcher = node.watcher(
        imds.url, actions=[node.action("'{kind} {action}' {time} host={host} {other}")]
    )
    assert watcher.poll() == 0
    assert node.calls() == [["spot-interruption hibernate", notice_time, "host=node007", "{other}"]]


def test_rebalance_acts_by_default(imds, node: Node) -> None:
    notice_time = ec2_time(-30)
    imds.set_rebalance(notice_time)
    watcher = node.watcher(imds.url, actions=[node.action("{kind} {action} {time}")])
    assert watcher.poll() == 0
    assert node.calls() == [["rebalance", "rebalance", notice_time]]
    assert watcher.poll() == 0
    assert len(node.calls()) == 1


def test_ignore_rebalance(imds, node: Node) -> None:
    imds.set_rebalance(ec2_time(-30))
    assert watch.main([*node.argv(imds.url), "--ignore-rebalance"]) == 0
    assert node.calls() == []
    assert ("GET", "/latest/meta-data/events/recommendations/rebalance", 200) not in paths(imds)
    assert not node.state.exists()
    # An interruption notice is still acted on.
    imds.set_spot_action("terminate", ec2_time(120))
    assert watch.main([*node.argv(imds.url), "--ignore-rebalance"]) == 0
    assert node.calls() == DEFAULT_SHAPED


def test_rebalance_then_interruption_acts_on_both(imds, node: Node) -> None:
    imds.set_rebalance(ec2_time(-30))
    watcher = node.watcher(imds.url)
    assert watcher.poll() == 0
    imds.set_spot_action("terminate", ec2_time(120))
    assert watcher.poll() == 0
    assert node.calls() == DEFAULT_SHAPED * 2
    assert {entry["kind"] for entry in node.handled().values()} == {
        "rebalance",
        "spot-interruption",
    }


def test_a_failing_command_is_retried_until_it_succeeds(imds, node: Node) -> None:
    imds.set_spot_action("terminate", ec2_time(120))
    node.fail_next(2, "-d")  # qmod -d fails on this poll and the next; qmod -rq succeeds
    watcher = node.watcher(imds.url)
    assert watcher.poll() == 1
    assert node.calls() == DEFAULT_SHAPED
    assert not node.state.exists()  # not handled yet
    assert any("rc=3 output: refused by the test" in line for line in watcher.logged)
    assert watcher.poll() == 1
    assert node.calls() == [*DEFAULT_SHAPED, DEFAULT_SHAPED[0]]  # only the failed one
    assert watcher.poll() == 0
    assert node.calls() == [*DEFAULT_SHAPED, DEFAULT_SHAPED[0], DEFAULT_SHAPED[0]]
    assert [entry["outcome"] for entry in node.handled().values()] == ["done"]
    assert watcher.poll() == 0
    assert len(node.calls()) == 4


def test_a_failed_notice_is_retried_after_a_restart(imds, node: Node) -> None:
    imds.set_spot_action("terminate", ec2_time(120))
    node.fail_next(1)
    assert watch.main(node.argv(imds.url)) == 1
    assert watch.main(node.argv(imds.url)) == 0
    assert node.calls() == [*DEFAULT_SHAPED, *DEFAULT_SHAPED]  # a new process runs both
    assert watch.main(node.argv(imds.url)) == 0
    assert len(node.calls()) == 4


def test_gives_up_once_the_notice_time_has_passed(imds, node: Node) -> None:
    imds.set_spot_action("terminate", ec2_time(-5))
    node.fail_next(100)
    watcher = node.watcher(imds.url)
    assert watcher.poll() == 1  # tried once, even late
    assert len(node.calls()) == 2
    assert [entry["outcome"] for entry in node.handled().values()] == ["gave-up"]
    assert watcher.poll() == 0
    assert len(node.calls()) == 2
    assert any(line.startswith("giving up on spot-interruption") for line in watcher.logged)


def test_a_missing_command_is_a_failure_not_a_crash(imds, node: Node, tmp_path: Path) -> None:
    imds.set_spot_action("terminate", ec2_time(120))
    missing = tmp_path / "no-such-qmod"
    watcher = node.watcher(imds.url, actions=[f"{missing} -d x"])
    assert watcher.poll() == 1
    assert any(f"command: {missing} -d x rc=127" in line for line in watcher.logged)


# --- the IMDS failing, and its tokens -----------------------------------------------------


def test_imds_down_exits_2(node: Node, capsys) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    assert watch.main(node.argv(endpoint)) == 2
    assert time.monotonic() - started < 1
    out = capsys.readouterr().out
    assert "IMDS error: PUT /latest/api/token:" in out
    assert "refused" in out.lower()
    assert node.calls() == []


def test_imds_that_does_not_answer_times_out(node: Node, capsys) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        code = watch.main([*node.argv(endpoint), "--http-timeout", "0.2"])
        assert code == 2
        assert time.monotonic() - started < 1.5
    errors = [line for line in capsys.readouterr().out.splitlines() if "IMDS error" in line]
    assert errors == ["IMDS error: PUT /latest/api/token: timed out (asking again every 0.05 s)"]


def test_imds_errors_are_logged_once_and_recovery_too(node: Node) -> None:
    port = free_port()
    servers = []
    watcher = node.watcher(f"http://127.0.0.1:{port}")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            servers.append(fake_imds.FakeImds(port=port))
            servers[0].start()
        if len(sleeps) == 5:
            watcher.request_stop("test")

    watcher.sleep = sleep
    try:
        assert watcher.run_loop() == 0
    finally:
        for server in servers:
            server.stop()
    assert sleeps == [0.05] * 5
    errors = [line for line in watcher.logged if line.startswith("IMDS error")]
    assert len(errors) == 1
    assert sum(line.startswith("IMDS reachable again") for line in watcher.logged) == 1
    assert watcher.logged[-1] == "stopping on test"


def test_server_errors_are_retried_on_the_next_poll(imds, node: Node) -> None:
    imds.set_spot_action("terminate", ec2_time(120))
    watcher = node.watcher(imds.url)
    imds.fail_next(1, 503)
    assert watcher.poll() == 2
    assert node.calls() == []
    assert paths(imds) == [("PUT", "/latest/api/token", 503)]  # no token: nothing more asked
    assert any("PUT /latest/api/token: HTTP 503" in line for line in watcher.logged)
    assert watcher.poll() == 0
    assert node.calls() == DEFAULT_SHAPED


def test_a_failing_path_does_not_hide_the_other(imds, node: Node) -> None:
    watcher = node.watcher(imds.url)
    assert watcher.poll() == 0  # holds a token now
    imds.set_rebalance(ec2_time(-30))
    imds.fail_next(1, 500)  # the interruption notice's GET
    assert watcher.poll() == 2
    assert paths(imds)[-2:] == [
        ("GET", "/latest/meta-data/spot/instance-action", 500),
        ("GET", "/latest/meta-data/events/recommendations/rebalance", 200),
    ]
    assert node.calls() == DEFAULT_SHAPED  # the rebalance recommendation was acted on


def test_token_is_reused_then_renewed_on_401(imds, node: Node) -> None:
    watcher = node.watcher(imds.url)
    for _poll in range(3):
        assert watcher.poll() == 0
    puts = [request for request in imds.requests if request.method == "PUT"]
    assert len(puts) == 1
    imds.expire_tokens()
    imds.set_spot_action("terminate", ec2_time(120))
    assert watcher.poll() == 0
    assert node.calls() == DEFAULT_SHAPED
    assert paths(imds)[-4:] == [
        ("GET", "/latest/meta-data/spot/instance-action", 401),
        ("PUT", "/latest/api/token", 200),
        ("GET", "/latest/meta-data/spot/instance-action", 200),
        ("GET", "/latest/meta-data/events/recommendations/rebalance", 404),
    ]
    expired, _put, *fresh = [r.headers.get("x-aws-ec2-metadata-token") for r in imds.requests[-4:]]
    assert fresh[0] == fresh[1] != expired
    assert set(imds.tokens) == {fresh[0]}


def test_token_is_renewed_before_it_expires(imds, node: Node) -> None:
    now = [1_000_000.0]
    watcher = node.watcher(imds.url, clock=lambda: now[0])
    assert watcher.poll() == 0
    now[0] += 21600 - 301
    assert watcher.poll() == 0
    assert [r.method for r in imds.requests].count("PUT") == 1
    now[0] += 2  # within 5 minutes of the end of its 6 hours
    assert watcher.poll() == 0
    assert [r.method for r in imds.requests].count("PUT") == 2
    assert all(r.status in (200, 404) for r in imds.requests)


def test_endpoint_from_the_environment(imds, node: Node, monkeypatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url + "/")
    imds.set_spot_action("terminate", ec2_time(120))
    assert watch.main(node.argv(None)) == 0
    assert node.calls() == DEFAULT_SHAPED
    assert paths(imds)[0] == ("PUT", "/latest/api/token", 200)  # no // from the slash


def test_endpoint_option_overrides_the_environment(imds, node: Node, monkeypatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert watch.main(node.argv(imds.url)) == 0
    assert len(imds.requests) == 3


def test_usage_errors(node: Node) -> None:
    for bad in (
        ["--action", "qmod 'unbalanced"],
        ["--endpoint", "169.254.169.254"],
        *(["--interval", value] for value in ("0", "-5", "nan", "inf", "soon")),
    ):
        with pytest.raises(SystemExit) as exit_info:
            watch.main([*node.argv(None), *bad])
        assert exit_info.value.code == 2


def test_an_unreadable_state_file_is_reported_and_replaced(imds, node: Node) -> None:
    node.state.parent.mkdir(parents=True)
    node.state.write_text("{not json")
    imds.set_spot_action("terminate", ec2_time(120))
    watcher = node.watcher(imds.url)
    assert watcher.run_loop(once=True) == 0
    assert any(line.startswith("state: cannot read") for line in watcher.logged)
    assert node.calls() == DEFAULT_SHAPED
    assert [entry["outcome"] for entry in node.handled().values()] == ["done"]


# --- pure functions ------------------------------------------------------------------------


def test_parse_notices() -> None:
    notice = watch.parse_spot_action('{"action": "stop", "time": "2026-12-06T01:02:03Z"}')
    assert (notice.kind, notice.action, notice.time) == (
        "spot-interruption",
        "stop",
        "2026-12-06T01:02:03Z",
    )
    assert watch.notice_deadline(notice) == datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC).timestamp()
    odd = watch.parse_spot_action("<html>surprise</html>")
    assert odd.action == "unknown"  # a 200 there is still an interruption
    assert watch.notice_deadline(odd) is None
    rebalance = watch.parse_rebalance('{"noticeTime": "2026-12-06T00:00:00Z"}')
    assert rebalance.time == "2026-12-06T00:00:00Z"
    assert watch.notice_deadline(rebalance) == (
        datetime(2026, 12, 6, 0, 10, tzinfo=UTC).timestamp()
    )
    handled = {notice.key: {}}
    assert watch.notices_to_act_on([notice, rebalance], handled, True) == [rebalance]
    assert watch.notices_to_act_on([notice, rebalance], {}, False) == [notice]


def test_render_default_commands() -> None:
    notice = watch.Notice("spot-interruption", "terminate", "2026-12-06T01:02:03Z")
    rendered = [watch.render_command(cmd, "node001", notice) for cmd in watch.DEFAULT_ACTIONS]
    assert rendered == [["qmod", "-d", "*@node001"], ["qmod", "-rq", "*@node001"]]


def test_state_keeps_the_newest_notices() -> None:
    handled = {f"k{i}": {"at": f"2026-12-06T01:{i:02d}:00+00:00"} for i in range(10)}
    assert list(watch.newest(handled, 3)) == ["k7", "k8", "k9"]


# --- the fake itself: no kinder than the real service ------------------------------------


def test_fake_imds_is_strict(imds) -> None:
    url = imds.url
    fetch = watch.http_fetch
    assert fetch("GET", f"{url}/latest/meta-data/instance-id", {}, 2)[0] == 401
    assert fetch("PUT", f"{url}/latest/api/token", {}, 2)[0] == 400
    for ttl in ("0", "21601", "ten"):
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
        assert fetch("PUT", f"{url}/latest/api/token", headers, 2)[0] == 400
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    forwarded = {**ttl, "X-Forwarded-For": "10.0.0.1"}
    assert fetch("PUT", f"{url}/latest/api/token", forwarded, 2)[0] == 403
    assert fetch("GET", f"{url}/latest/api/token", ttl, 2)[0] == 405
    status, token = fetch("PUT", f"{url}/latest/api/token", ttl, 2)
    assert status == 200
    auth = {"X-aws-ec2-metadata-token": token}
    assert fetch("GET", f"{url}/latest/meta-data/instance-id", auth, 2)[0] == 200
    bad = {"X-aws-ec2-metadata-token": token + "x"}
    assert fetch("GET", f"{url}/latest/meta-data/instance-id", bad, 2)[0] == 401
    both = {**auth, "X-Forwarded-For": "10.0.0.1"}
    assert fetch("GET", f"{url}/latest/meta-data/instance-id", both, 2)[0] == 403
    assert fetch("GET", f"{url}/latest/meta-data/no-such-thing", auth, 2)[0] == 404
    assert fetch("GET", f"{url}/latest/meta-data/spot/instance-action", auth, 2)[0] == 404
    assert fetch("PUT", f"{url}/latest/meta-data/instance-id", auth, 2)[0] == 405
    imds.set_spot_action("terminate", "2026-12-06T01:02:03Z")
    assert fetch("GET", f"{url}/latest/meta-data/spot/", auth, 2) == (
        200,
        "instance-action\ntermination-time",
    )
    status, body = fetch("GET", f"{url}/latest/meta-data/spot/instance-action", auth, 2)
    assert (status, json.loads(body)) == (
        200,
        {"action": "terminate", "time": "2026-12-06T01:02:03Z"},
    )
    with pytest.raises(ValueError, match="not a spot action"):
        imds.set_spot_action("reboot", "2026-12-06T01:02:03Z")
    with pytest.raises(ValueError):
        imds.set_rebalance("tomorrow")


def test_fake_imds_tokens_expire_after_their_ttl() -> None:
    now = [0.0]
    with fake_imds.FakeImds(clock=lambda: now[0]) as imds:
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "10"}
        status, token = watch.http_fetch("PUT", f"{imds.url}/latest/api/token", ttl, 2)
        assert status == 200
        auth = {"X-aws-ec2-metadata-token": token}
        now[0] = 9.9
        assert watch.http_fetch("GET", f"{imds.url}/latest/meta-data/", auth, 2)[0] == 200
        now[0] = 10.0
        assert watch.http_fetch("GET", f"{imds.url}/latest/meta-data/", auth, 2)[0] == 401


def test_fake_imds_control_api(imds) -> None:
    fetch = watch.http_fetch
    headers = {"Content-Type": "application/json"}

    def control(method: str, name: str, body: dict | None = None) -> tuple[int, str]:
        port = int(imds.url.rsplit(":", maxsplit=1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, f"/_fake/{name}", body=data, headers=headers)
        response = connection.getresponse()
        result = response.status, response.read().decode()
        connection.close()
        return result

    spot = {"action": "stop", "time": "2026-12-06T01:02:03Z"}
    assert control("PUT", "spot/instance-action", spot)[0] == 204
    assert imds.spot_action == spot
    assert control("PUT", "events/recommendations/rebalance", {"noticeTime": "x"})[0] == 400
    assert (
        control("PUT", "events/recommendations/rebalance", {"noticeTime": spot["time"]})[0] == 204
    )
    assert imds.rebalance == {"noticeTime": spot["time"]}
    assert control("DELETE", "spot/instance-action")[0] == 204
    assert imds.spot_action is None
    assert control("POST", "fail", {"count": 1, "status": 500})[0] == 204
    assert fetch("PUT", f"{imds.url}/latest/api/token", {}, 2)[0] == 500
    assert fetch("PUT", f"{imds.url}/latest/api/token", {}, 2)[0] == 400
    status, body = control("GET", "requests")
    assert status == 200
    assert [(r["method"], r["status"]) for r in json.loads(body)] == [("PUT", 500), ("PUT", 400)]
    assert control("POST", "nothing")[0] == 400


# --- as the node runs it ---------------------------------------------------------------------


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="no /usr/bin/python3")
def test_debian_python_runs_it_end_to_end(imds, tmp_path: Path) -> None:
    node = Node(tmp_path, python=str(DEBIAN_PYTHON))
    imds.set_spot_action("terminate", ec2_time(120))
    env = {**os.environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
    argv = [str(DEBIAN_PYTHON), str(PROGRAM), *node.argv(None)]
    for expected_calls in (DEFAULT_SHAPED, DEFAULT_SHAPED):  # the second run repeats nothing
        result = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=10, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert node.calls() == expected_calls
    assert "notice: spot-interruption action=terminate" in result.stdout
    assert "handled before: done" in result.stdout
    assert result.stderr == ""


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="no /usr/bin/python3")
def test_sigterm_ends_the_loop_at_once(imds, node: Node) -> None:
    argv = [
        str(DEBIAN_PYTHON),
        str(PROGRAM),
        *[arg for arg in node.argv(imds.url) if arg != "--once"],
    ]
    argv[argv.index("--interval") + 1] = "60"
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert lines[1].startswith("IMDS reachable"), lines
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, _err = process.communicate(timeout=5)
    assert process.returncode == 0
    assert time.monotonic() - started < 1
    assert out.strip().splitlines()[-1] == "stopping on SIGTERM"
