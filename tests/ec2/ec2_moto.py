"""moto_server and a recording proxy in front of it, for the EC2 tests and bench/.

``MotoServer`` starts ``moto_server -H 127.0.0.1 -p PORT`` from the venv and resets it
through moto's ``POST /moto-api/reset``. ``AwsProxy`` forwards every request to it,
records each API call's ``Action`` (the EC2 query protocol names it in the form body)
and can answer chosen calls with an EC2 error instead, the way AWS answers a refused
spot request; the playbooks reach it through ``endpoint_url`` like any endpoint.
``ec2_strict(target)`` is a ready refusal rule that makes the proxy refuse what EC2
refuses and moto lets through (an in-use security group deleted, a volume attached
twice or to a device already in use, an attached volume deleted); ``any_refusal``
combines rules.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3

VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

# A refusal rule: given the call's form fields, return (code, message) to refuse it.
Refusal = Callable[[Mapping[str, str]], tuple[str, str] | None]

# Instance states in which EC2 no longer holds an instance's interfaces, devices or groups.
GONE_STATES = ("terminated",)


def aws_env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of an AWS client run against moto: fake credentials, moto's
    endpoint, a private HOME, no colour, this venv first on PATH; extra on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SEGWAY_"))}
    env.update(FAKE_CREDENTIALS)
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION=REGION,
        HOME=str(home),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


def ec2_client(endpoint: str, service: str = "ec2") -> Any:
    """A boto3 client of moto's server at endpoint (EC2 unless service says otherwise)."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def any_refusal(*rules: Refusal | None) -> Refusal:
    """One rule from several: the first that refuses a call answers it."""

    def refuse(fields: Mapping[str, str]) -> tuple[str, str] | None:
        for rule in rules:
            answer = rule(fields) if rule else None
            if answer:
                return answer
        return None

    return refuse


def ec2_strict(target: str) -> Refusal:
    """A refusal rule answering, as EC2 does, calls that moto_server lets through.

    moto is laxer than EC2 where it matters for safety, so a test that relies on EC2
    refusing something turns this rule on (``AwsProxy(url, refuse=ec2_strict(url))``);
    it asks moto (boto3 against target, not through the proxy) for the current state:

    - DeleteSecurityGroup of a group that a network interface still uses (one not
      attached to a terminated instance: moto keeps those, EC2 deletes them), that a
      non-terminated instance is in, or that another group's rule names ->
      ``DependencyViolation`` "resource sg-... has a dependent object";
    - AttachVolume to a device name the instance already uses ->
      ``InvalidParameterValue`` "Invalid value '/dev/sdf' for unixDevice. Attachment
      point /dev/sdf is already in use";
    - AttachVolume of a volume that is attached -> ``VolumeInUse`` "vol-... is already
      attached to an instance";
    - DeleteVolume of an attached volume -> ``VolumeInUse`` "Volume vol-... is currently
      attached to i-...".
    """
    ec2 = ec2_client(target)

    def group_in_use(group_id: str) -> bool:
        interfaces = ec2.describe_network_interfaces(
            Filters=[{"Name": "group-id", "Values": [group_id]}]
        )["NetworkInterfaces"]
        attached = {(n.get("Attachment") or {}).get("InstanceId") for n in interfaces} - {None}
        states = instance_states(sorted(attached))
        if any(states.get(i) not in GONE_STATES for i in attached):
            return True
        if any(not (n.get("Attachment") or {}).get("InstanceId") for n in interfaces):
            return True
        members = ec2.describe_instances(
            Filters=[{"Name": "instance.group-id", "Values": [group_id]}]
        )["Reservations"]
        if any(i["State"]["Name"] not in GONE_STATES for r in members for i in r["Instances"]):
            return True
        naming = ec2.describe_security_groups(
            Filters=[{"Name": "ip-permission.group-id", "Values": [group_id]}]
        )["SecurityGroups"]
        return any(g["GroupId"] != group_id for g in naming)

    def instance_states(ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        found = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ids}])
        return {
            i["InstanceId"]: i["State"]["Name"]
            for r in found["Reservations"]
            for i in r["Instances"]
        }

    def volume(volume_id: str) -> dict[str, Any] | None:
        found = ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])
        return found["Volumes"][0] if found["Volumes"] else None

    def refuse(fields: Mapping[str, str]) -> tuple[str, str] | None:
        action = fields.get("Action")
        if action == "DeleteSecurityGroup":
            group_id = fields.get("GroupId") or group_id_of(fields.get("GroupName", ""))
            if group_id and group_in_use(group_id):
                return ("DependencyViolation", f"resource {group_id} has a dependent object")
        elif action == "AttachVolume":
            vol = volume(fields.get("VolumeId", ""))
            if vol and vol.get("Attachments"):
                return ("VolumeInUse", f"{vol['VolumeId']} is already attached to an instance")
            device = fields.get("Device", "")
            found = ec2.describe_instances(
                Filters=[{"Name": "instance-id", "Values": [fields.get("InstanceId", "")]}]
            )["Reservations"]
            used = {
                b["DeviceName"]
                for r in found
                for i in r["Instances"]
                for b in i.get("BlockDeviceMappings", [])
            }
            if device in used:
                return (
                    "InvalidParameterValue",
                    f"Invalid value '{device}' for unixDevice. "
                    f"Attachment point {device} is already in use",
                )
        elif action == "DeleteVolume":
            vol = volume(fields.get("VolumeId", ""))
            if vol and vol.get("Attachments"):
                owner = vol["Attachments"][0].get("InstanceId", "an instance")
                return ("VolumeInUse", f"Volume {vol['VolumeId']} is currently attached to {owner}")
        return None

    def group_id_of(name: str) -> str:
        if not name:
            return ""
        found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])
        return found["SecurityGroups"][0]["GroupId"] if found["SecurityGroups"] else ""

    return refuse


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """One moto_server process on 127.0.0.1."""

    def __init__(self, port: int | None = None, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        out = self.log.open("wb") if self.log else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):  # noqa: S310 (http://127.0.0.1)
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.url} within {timeout} s")

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class AwsProxy:
    """Forward to moto, count the API calls, refuse the ones a rule picks."""

    def __init__(
        self,
        target: str,
        refuse: Refusal | None = None,
        after: Callable[[str, Mapping[str, str], int], None] | None = None,
    ) -> None:
        self.target = target.rstrip("/")
        self.refuse = refuse
        # Called with (action, form fields, HTTP status) once moto answered and before the
        # answer goes back: the EC2 twin (ec2_twin.py) makes the data plane follow here, so
        # a caller never sees an instance or attachment its container does not show yet.
        self.after = after
        self.calls: list[str] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> AwsProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.refused.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
                action = fields.get("Action", self.command + " " + self.path.split("?")[0])
                with proxy._lock:
                    proxy.calls.append(action)
                refusal = proxy.refuse(fields) if proxy.refuse else None
                if refusal:
                    with proxy._lock:
                        proxy.refused.append(action)
                    self._send(400, ec2_error(*refusal), "text/xml")
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(  # noqa: S310 (proxy.target is moto's http URL)
                    proxy.target + self.path,
                    data=body or None,
                    headers=headers,
                    method=self.command,
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                        status, data = response.status, response.read()
                        ctype = response.headers.get("Content-Type", "text/xml")
                except urllib.error.HTTPError as err:
                    status, data = err.code, err.read()
                    ctype = err.headers.get("Content-Type", "text/xml")
                if proxy.after:
                    proxy.after(action, fields, status)
                self._send(status, data, ctype)

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        return Handler


def ec2_error(code: str, message: str) -> bytes:
    """An error response in the EC2 query protocol's format."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
        "</Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    ).encode()
