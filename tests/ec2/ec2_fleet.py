"""An AwsProxy that plays EC2's instant fleets where moto_server plays them differently.

moto_server 5.2.5 answers ``CreateFleet`` ``Type=instant``: it launches the instances at
once and returns them in ``Instances`` (one entry per instance, where EC2 groups the ids
of a pool), applies the ``instance`` and ``fleet`` tag specifications (not ``volume``),
resolves the launch template by id or name, and applies the overrides' type and subnet
and the template's image and key pair. Where it differs from EC2, ``FleetProxy`` answers
as EC2 does:

- **Capacity.** moto puts the whole capacity in the first override, never fulfils
  partially and never returns ``Errors``. Given a capacity per market
  (``proxy.capacity["spot"] = 2``), the proxy lowers the ``TotalTargetCapacity`` moto
  gets to what is left (so moto launches only that many, as EC2 would) and adds to
  moto's answer an ``errorSet`` with one error per requested pool, in EC2's format
  (botocore parses it into ``Errors``); ``proxy.error_code`` is its code
  (``InsufficientInstanceCapacity`` by default).
- **A launched instance's groups** (``like_ec2=True``). moto lists an instance that
  RunInstances gave security groups through its network interface in no group
  (``SecurityGroups`` empty); EC2 lists the interface's groups. The proxy gives it them,
  straight at moto (not counted).
- **The template's other settings** (``like_ec2=True``). moto launches a fleet's
  instances without the template's network interface (its security groups: they land
  in the VPC's default group) and without its ``MetadataOptions`` (IMDSv2). EC2 applies
  both. Before the answer goes back, the proxy gives the instances moto launched the
  template's groups and metadata options, straight at moto (those calls are not
  counted: they are EC2's own doing, not the caller's).

``proxy.requests`` keeps every request's form fields; ``proxy.fleet_requests()`` reads
the CreateFleet requests as structures (``fleet_request``).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

from ec2_moto import AwsProxy, ec2_client

NO_CAPACITY = {
    "spot": "There is no Spot capacity available that matches your request.",
    "on-demand": (
        "We currently do not have sufficient {type} capacity in the Availability Zone you "
        "requested. Our system will be working on provisioning additional capacity."
    ),
}


class FleetProxy(AwsProxy):
    """AwsProxy that keeps each request's fields and plays EC2's limited capacity."""

    def __init__(self, target: str, *, like_ec2: bool = False, **kwargs: Any) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        # Instances EC2 has left per market; None: as many as asked (moto's behaviour).
        self.capacity: dict[str, int | None] = {"spot": None, "on-demand": None}
        self.error_code = "InsufficientInstanceCapacity"
        self.like_ec2 = like_ec2
        # EC2 answers CreateFleet while its instances are still pending; moto starts them
        # at once. Like EC2, each instance a fleet launched shows "pending" in this many
        # DescribeInstances answers that list it before it shows "running".
        self.pending_describes = 1 if like_ec2 else 0
        self.pending: dict[str, int] = {}
        self._fields_lock = threading.Lock()
        super().__init__(target, **kwargs)
        self._ec2 = ec2_client(self.target) if like_ec2 else None

    def fleet_requests(self) -> list[dict[str, Any]]:
        return [fleet_request(f) for action, f in self.requests if action == "CreateFleet"]

    def clear(self) -> None:
        super().clear()
        with self._fields_lock:
            self.requests.clear()

    def limit(self, fields: Mapping[str, str]) -> tuple[int, int]:
        """(asked, granted) for this CreateFleet; takes the granted from the capacity."""
        market = fields.get("TargetCapacitySpecification.DefaultTargetCapacityType", "")
        asked = int(fields.get("TargetCapacitySpecification.TotalTargetCapacity", "0"))
        with self._fields_lock:
            left = self.capacity.get(market)
            granted = asked if left is None else min(asked, left)
            if left is not None:
                self.capacity[market] = left - granted
        return asked, granted

    def apply_template(self, fields: Mapping[str, str], answer: bytes) -> None:
        """Give the instances of this fleet answer the template's security groups and
        metadata options, as EC2 launches them (moto leaves both out)."""
        found = re.findall(rb"<instanceIds>(.*?)</instanceIds>", answer, re.S)
        ids = sorted({i.decode() for part in found for i in re.findall(rb"i-[0-9a-f]+", part)})
        if not ids or self._ec2 is None:
            return
        with self._fields_lock:
            self.pending.update(dict.fromkeys(ids, self.pending_describes))
        spec = fleet_request(fields)["template"]
        which = {"Versions": [spec.get("Version", "$Default")]}
        if "LaunchTemplateId" in spec:
            which["LaunchTemplateId"] = spec["LaunchTemplateId"]
        else:
            which["LaunchTemplateName"] = spec["LaunchTemplateName"]
        versions = self._ec2.describe_launch_template_versions(**which)["LaunchTemplateVersions"]
        data = versions[0]["LaunchTemplateData"]
        groups = list(data.get("SecurityGroupIds") or [])
        for interface in data.get("NetworkInterfaces") or []:
            if int(interface.get("DeviceIndex", 0)) == 0:
                groups = list(interface.get("Groups") or groups)
        metadata = {
            k: v
            for k, v in (data.get("MetadataOptions") or {}).items()
            if k in ("HttpTokens", "HttpEndpoint", "HttpPutResponseHopLimit")
        }
        for instance_id in ids:
            if groups:
                self._ec2.modify_instance_attribute(InstanceId=instance_id, Groups=groups)
            if metadata:
                self._ec2.modify_instance_metadata_options(InstanceId=instance_id, **metadata)

    def apply_interface_groups(self, fields: Mapping[str, str], answer: bytes) -> None:
        """Give the instances of this RunInstances answer the security groups their
        request gave the primary network interface, as EC2 shows them (moto lists such
        an instance in no group)."""
        groups = [
            v
            for k, v in sorted(fields.items())
            if re.fullmatch(r"NetworkInterface\.1\.SecurityGroupId\.\d+", k)
        ]
        if not groups or self._ec2 is None:
            return
        ids = sorted(
            {i.decode() for i in re.findall(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", answer)}
        )
        for instance_id in ids:
            self._ec2.modify_instance_attribute(InstanceId=instance_id, Groups=groups)

    def show_pending(self, answer: bytes) -> bytes:
        """A DescribeInstances answer with the fleet's instances still pending shown so."""
        with self._fields_lock:
            for instance_id, left in list(self.pending.items()):
                if left <= 0:
                    continue
                pattern = (
                    rb"(<instanceId>"
                    + instance_id.encode()
                    + rb"</instanceId>.*?<instanceState>\s*)"
                    rb"<code>16</code>(\s*)<name>running</name>"
                )
                answer, found = re.subn(
                    pattern, rb"\1<code>0</code>\2<name>pending</name>", answer, count=1, flags=re.S
                )
                if found:
                    self.pending[instance_id] = left - 1
        return answer

    def _handler(self) -> type:
        base = super()._handler()
        proxy = self

        class Handler(base):  # type: ignore[misc, valid-type]
            short: dict[str, str] | None = None
            fleet: dict[str, str] | None = None
            run: dict[str, str] | None = None
            action: str = ""

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
                fields = dict(pairs)
                action = fields.get("Action", self.command)
                with proxy._fields_lock:
                    proxy.requests.append((action, fields))
                self.short = None
                self.action = action
                self.fleet = fields if action == "CreateFleet" else None
                self.run = fields if action == "RunInstances" else None
                if action == "CreateFleet":
                    asked, granted = proxy.limit(fields)
                    if granted < asked:  # EC2 launches what it has and says why not more
                        self.short = fields
                        total = "TargetCapacitySpecification.TotalTargetCapacity"
                        pairs = [(k, str(granted) if k == total else v) for k, v in pairs]
                        body = urlencode(pairs).encode()
                        self.headers.replace_header("Content-Length", str(len(body)))
                original = self.rfile
                self.rfile = io.BytesIO(body)
                try:
                    base._forward(self)
                finally:
                    self.rfile = original

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                if self.short is not None and status == 200:
                    code = proxy.error_code
                    data = data.replace(
                        b"<requestId>", error_set(self.short, code) + b"<requestId>", 1
                    )
                if self.fleet is not None and status == 200 and proxy.like_ec2:
                    proxy.apply_template(self.fleet, data)
                if self.run is not None and status == 200 and proxy.like_ec2:
                    proxy.apply_interface_groups(self.run, data)
                if self.action == "DescribeInstances" and status == 200 and proxy.pending:
                    data = proxy.show_pending(data)
                base._send(self, status, data, ctype)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        return Handler


def error_set(fields: Mapping[str, str], code: str = "InsufficientInstanceCapacity") -> bytes:
    """EC2's errorSet for a CreateFleet it could not fill: one error per requested pool."""
    request = fleet_request(fields)
    market = request["market"]
    template = "".join(
        f"<{tag}>{escape(request['template'][key])}</{tag}>"
        for key, tag in (
            ("LaunchTemplateId", "launchTemplateId"),
            ("LaunchTemplateName", "launchTemplateName"),
            ("Version", "version"),
        )
        if key in request["template"]
    )
    items = []
    for override in request["overrides"]:
        subnet = f"<subnetId>{override['SubnetId']}</subnetId>" if "SubnetId" in override else ""
        message = NO_CAPACITY[market].format(type=override["InstanceType"])
        items.append(
            "<item><launchTemplateAndOverrides>"
            f"<launchTemplateSpecification>{template}</launchTemplateSpecification>"
            f"<overrides><instanceType>{override['InstanceType']}</instanceType>{subnet}"
            "</overrides></launchTemplateAndOverrides>"
            f"<lifecycle>{market}</lifecycle>"
            f"<errorCode>{escape(code)}</errorCode>"
            f"<errorMessage>{escape(message)}</errorMessage></item>"
        )
    return ("<errorSet>" + "".join(items) + "</errorSet>").encode()


def fleet_request(fields: Mapping[str, str]) -> dict[str, Any]:
    """A CreateFleet request's form fields (EC2 query protocol) as a structure."""
    overrides: dict[int, dict[str, str]] = {}
    tag_specs: dict[int, dict[str, Any]] = {}
    template = {}
    prefix = "LaunchTemplateConfigs.1."
    for key, value in fields.items():
        parts = key.split(".")
        if key.startswith(prefix + "Overrides."):
            overrides.setdefault(int(parts[3]), {})[parts[4]] = value
        elif key.startswith(prefix + "LaunchTemplateSpecification."):
            template[parts[3]] = value
        elif key.startswith("TagSpecification."):
            spec = tag_specs.setdefault(int(parts[1]), {"tags": {}, "keys": {}, "values": {}})
            if parts[2] == "ResourceType":
                spec["type"] = value
            else:
                spec["keys" if parts[4] == "Key" else "values"][int(parts[3])] = value
    return {
        "type": fields.get("Type"),
        "client_token": fields.get("ClientToken"),
        "market": fields.get("TargetCapacitySpecification.DefaultTargetCapacityType"),
        "total": int(fields.get("TargetCapacitySpecification.TotalTargetCapacity", "-1")),
        "spot_strategy": fields.get("SpotOptions.AllocationStrategy"),
        "on_demand_strategy": fields.get("OnDemandOptions.AllocationStrategy"),
        "template": template,
        "configs": len({k.split(".")[1] for k in fields if k.startswith("LaunchTemplateConfigs.")}),
        "overrides": [overrides[i] for i in sorted(overrides)],
        "tags": {
            s["type"]: {s["keys"][i]: s["values"][i] for i in s["keys"]} for s in tag_specs.values()
        },
    }
