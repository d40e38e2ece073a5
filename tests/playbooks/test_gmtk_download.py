"""A GMTK archive given as a URL is downloaded and checked on the controller before launch
creates anything (roles/segway_env, tasks/gmtk_fetch.yml, run by playbooks/launch.yml).

A real HTTPS server on 127.0.0.1 (a certificate made for the test, trusted through
SSL_CERT_FILE) serves a small .tar.gz; the controller's download cache is pointed into
tmp_path (XDG_CACHE_HOME). Then, with the real playbooks:

1. launch.yml with a checksum that is not the archive's stops in its first play, naming
   segway_env_gmtk_checksum, the value given and the archive's real sha256: no task
   changed anything, no container, network or volume of the cluster exists, the local
   provider's launch never started, and nothing is left in the cache.
2. launch.yml with a URL that does not answer stops the same way, naming
   segway_env_gmtk_source.
3. The fetch itself, with the right checksum: the archive lands in the cache under its
   sha256, the fact segway_env_gmtk_fetched maps the URL to it, and a second run
   changes nothing and sends no request to the server.
4. configure.yml's own expressions (its first play's vars, as written) hand the cached
   path to the master instead of the URL, keep the release's checksum with it, and keep
   the URL when launch fetched nothing (configure.yml run on its own).
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from refusal import assert_refused
from test_local_bad_input import docker_objects

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
CLUSTER = "gmtkdl"
NAME = "gmtk-1.4.4.tar.gz"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("gmtk-https")
    served = root / "www"
    served.mkdir()
    (root / "gmtk-1.4.4").mkdir()
    (root / "gmtk-1.4.4" / "configure").write_text("#!/bin/sh\necho not really GMTK\n")
    with tarfile.open(served / NAME, "w:gz") as archive:
        archive.add(root / "gmtk-1.4.4", arcname="gmtk-1.4.4")
    cert_file, key_file = make_certificate(root)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args) -> None:  # quiet
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    # A port nothing listens on, for the URL that does not answer.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    try:
        yield {
            "url": f"https://127.0.0.1:{httpd.server_address[1]}/{NAME}",
            "dead_url": f"https://127.0.0.1:{dead_port}/{NAME}",
            "sha256": hashlib.sha256((served / NAME).read_bytes()).hexdigest(),
            "cert": cert_file,
            "requests": requests,
        }
    finally:
        httpd.shutdown()


def env_for(server: dict, cache: Path) -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        SSL_CERT_FILE=str(server["cert"]),
        XDG_CACHE_HOME=str(cache),
    )


def playbook(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), *argv],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def launch(server: dict, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    inputs = {
        "provider": "local",
        "cluster_name": CLUSTER,
        "volume_dir": str(tmp_path / "volumes"),
        # A tripwire: the local provider refuses this in its own checks, which come after
        # the GMTK download. Were the download check gone or moved after provisioning, the
        # run would stop there (and the test fail on its message), never start a cluster.
        "local_mem_requested": "lots",
        **extra,
    }
    return playbook(["playbooks/launch.yml", "-e", json.dumps(inputs)], env_for(server, tmp_path))


def test_launch_stops_on_a_checksum_that_is_not_the_archives(server: dict, tmp_path: Path) -> None:
    wrong = "sha256:" + "0" * 64
    result = launch(server, tmp_path, segway_gmtk_source=server["url"], segway_gmtk_checksum=wrong)
    output = assert_refused(
        result,
        [
            f"segway_env_gmtk_checksum '{wrong}' does not match the archive at "
            f"segway_env_gmtk_source '{server['url']}'",
            server["sha256"],
            "Nothing was launched or changed.",
        ],
    )
    assert "Start the nodes as containers on this machine" not in output, output
    assert docker_objects(CLUSTER) == []
    cached = tmp_path / "segway.cluster" / "gmtk"
    assert not [path for path in cached.rglob("*") if path.is_file()], list(cached.rglob("*"))


def test_launch_stops_on_a_url_that_does_not_answer(server: dict, tmp_path: Path) -> None:
    result = launch(
        server,
        tmp_path,
        segway_gmtk_source=server["dead_url"],
        segway_gmtk_checksum="sha256:" + server["sha256"],
    )
    output = assert_refused(
        result,
        [
            f"segway_env_gmtk_source '{server['dead_url']}' could not be downloaded "
            "to this machine",
            "Nothing was launched or changed.",
        ],
    )
    assert "Start the nodes as containers on this machine" not in output, output
    assert docker_objects(CLUSTER) == []


FETCH_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: segway.cluster.segway_env
        tasks_from: gmtk_fetch
      vars:
        segway_env_gmtk_source: "{{ url }}"
        segway_env_gmtk_checksum: "{{ checksum }}"
    - ansible.builtin.copy:
        content: "{{ segway_env_gmtk_fetched | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
      changed_when: false
"""


def test_fetch_downloads_once_into_the_cache(server: dict, tmp_path: Path) -> None:
    play = tmp_path / "fetch.yml"
    play.write_text(FETCH_PLAY)
    out = tmp_path / "fetched.json"
    inputs = json.dumps(
        {"url": server["url"], "checksum": f"sha256:{server['sha256']}", "out": str(out)}
    )
    env = env_for(server, tmp_path)
    before = len(server["requests"])
    first = playbook([str(play), "-e", inputs], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "changed=1" in first.stdout, first.stdout
    cached = tmp_path / "segway.cluster" / "gmtk" / server["sha256"] / NAME
    assert json.loads(out.read_text()) == {server["url"]: str(cached)}
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == server["sha256"]
    assert server["requests"][before:] == [f"/{NAME}"]

    second = playbook([str(play), "-e", inputs], env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "changed=0" in second.stdout, second.stdout
    assert server["requests"][before:] == [f"/{NAME}"], "the cached archive was downloaded again"
    assert json.loads(out.read_text()) == {server["url"]: str(cached)}


RELEASE = "https://melodi.example/gmtk-1.4.4.tar.gz"
RELEASE_SUM = "sha256:" + "a" * 64


def configure_expressions(tmp_path: Path, fetched: dict[str, str]) -> dict[str, str]:
    """configure.yml's GMTK vars as written, evaluated for an EC2 node (segway_instance_id)."""
    first_play = yaml.safe_load((REPO / "playbooks" / "configure.yml").read_text())[0]
    names = ("segway_env_gmtk_wanted", "segway_env_gmtk_source", "segway_env_gmtk_checksum")
    play_vars = {name: first_play["vars"][name] for name in names}
    out = tmp_path / "resolved.json"
    plays = [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [{"ansible.builtin.set_fact": {"segway_env_gmtk_fetched": fetched}}]
            if fetched
            else [],
        },
        {
            "hosts": "node001",
            "connection": "local",
            "gather_facts": False,
            "vars": {
                **play_vars,
                "segway_env_gmtk_release_source": RELEASE,
                "segway_env_gmtk_release_checksum": RELEASE_SUM,
            },
            "tasks": [
                {
                    "ansible.builtin.copy": {
                        "content": "{{ {'source': segway_env_gmtk_source, "
                        "'checksum': segway_env_gmtk_checksum} | to_json }}",
                        "dest": str(out),
                        "mode": "0644",
                    },
                    "delegate_to": "localhost",
                }
            ],
        },
    ]
    play = tmp_path / "configure_vars.yml"
    play.write_text(yaml.safe_dump(plays))
    inventory = tmp_path / "inventory"
    inventory.write_text("node001 ansible_connection=local segway_instance_id=i-0123\n")
    result = playbook(["-i", str(inventory), str(play)], dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def test_configure_copies_what_launch_fetched(tmp_path: Path) -> None:
    cached = str(tmp_path / "cache" / "gmtk-1.4.4.tar.gz")
    assert configure_expressions(tmp_path, {RELEASE: cached}) == {
        "source": cached,
        "checksum": RELEASE_SUM,
    }
    # configure.yml on its own: nothing fetched, the master downloads the URL.
    assert configure_expressions(tmp_path, {}) == {"source": RELEASE, "checksum": RELEASE_SUM}
