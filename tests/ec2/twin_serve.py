"""An EC2 twin to use by hand: moto_server, the strict proxy and the node containers.

    sudo .venv/bin/python tests/ec2/twin_serve.py [--env FILE]

prints (and writes to FILE) the environment that points the playbooks at it, e.g.

    export AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_REGION=us-east-1 ...
    ansible-playbook playbooks/launch.yml -e size=small -e ami_id=ami-... \
      -e admin_cidr=54.214.255.254/32 -e public_key_file=~/.ssh/id_ed25519.pub \
      -e nfs_server_implementation=ganesha -e nfs_client_mount=false \
      -e segway_gmtk_source=''

and keeps running (the twin follows every call) until interrupted; then it removes every
container, loop device and image file it made. ``make twin`` runs it.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ec2_moto import FAKE_CREDENTIALS, REGION, AwsProxy, MotoServer, any_refusal, ec2_strict
from ec2_testlib import debian_image
from ec2_twin import PUBLIC_GATEWAY, Ec2Twin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--env", type=Path, help="also write the environment to this file")
    parser.add_argument("--name", default="segway-twin", help="docker names and labels")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segway-twin-"))
    moto = MotoServer(log=work / "moto_server.log").start()
    twin = Ec2Twin(moto.url, work, name=args.name).start()
    proxy = AwsProxy(moto.url, refuse=any_refusal(ec2_strict(moto.url), twin.refuse),
                     after=twin.after).__enter__()  # fmt: skip
    image = debian_image(twin.ec2)
    env = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": proxy.url, "AWS_REGION": REGION}
    lines = ["export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())]
    lines.append(
        f"# -e ami_id={image} -e admin_cidr={PUBLIC_GATEWAY}/32 "
        "-e nfs_server_implementation=ganesha -e nfs_client_mount=false -e segway_gmtk_source=''"
    )
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    if args.env:
        args.env.write_text(text)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(1)
            while twin.errors:
                print("twin:", twin.errors.pop(0), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.__exit__()
        twin.close()
        moto.stop()
        print(f"calls: {dict(proxy.counts())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
