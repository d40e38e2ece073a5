# Copyright: segway.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions for Grid Engine configuration objects edited through qconf files.

Queues, host groups, parallel environments, the scheduler configuration and the
global configuration all print as ``key value`` lines (long values wrapped with a
trailing backslash) and are written back with ``qconf -A<kind> FILE`` (add) or
``qconf -M<kind> FILE`` (modify). This module knows, for each kind, the qconf options,
the attribute that names the object and the template a new object starts from, so a
caller can give only the attributes it cares about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ansible_collections.segway.cluster.plugins.module_utils.sge import (
    parse_config,
    split_top_level,
)


@dataclass(frozen=True)
class Kind:
    """How qconf shows, adds, modifies, deletes and lists one kind of object."""

    show: str
    modify: str
    name_key: str | None = None
    add: str | None = None
    delete: str | None = None
    listing: str | None = None
    template: tuple[tuple[str, str], ...] = ()
    # Objects that always exist once and cannot be added or deleted.
    singleton: bool = False
    # File name qconf -M<kind> insists on (the global configuration's must be "global").
    file_name: str | None = None


# Templates as Debian's gridengine 8.1.9 `qconf -aq` / `-ap` / `-ahgrp` present them
# (captured with EDITOR=cat), except pe_list: the stock "make smp mpi" names PEs that
# Debian does not create, so `qconf -Aq` would fail with it.
QUEUE_TEMPLATE = (
    ("qname", "template"),
    ("hostlist", "NONE"),
    ("seq_no", "0"),
    ("load_thresholds", "np_load_avg=1.75"),
    ("suspend_thresholds", "NONE"),
    ("nsuspend", "1"),
    ("suspend_interval", "00:05:00"),
    ("priority", "0"),
    ("min_cpu_interval", "00:05:00"),
    ("processors", "UNDEFINED"),
    ("qtype", "BATCH INTERACTIVE"),
    ("ckpt_list", "NONE"),
    ("pe_list", "NONE"),
    ("rerun", "FALSE"),
    ("slots", "1"),
    ("tmpdir", "/tmp"),  # noqa: S108 - the queue template's own value
    ("shell", "/bin/sh"),
    ("prolog", "NONE"),
    ("epilog", "NONE"),
    ("shell_start_mode", "posix_compliant"),
    ("starter_method", "NONE"),
    ("suspend_method", "NONE"),
    ("resume_method", "NONE"),
    ("terminate_method", "NONE"),
    ("notify", "00:00:60"),
    ("owner_list", "NONE"),
    ("user_lists", "NONE"),
    ("xuser_lists", "NONE"),
    ("subordinate_list", "NONE"),
    ("complex_values", "NONE"),
    ("projects", "NONE"),
    ("xprojects", "NONE"),
    ("calendar", "NONE"),
    ("initial_state", "default"),
    *(
        (f"{soft_or_hard}_{limit}", "INFINITY")
        for limit in ("rt", "cpu", "fsize", "data", "stack", "core", "rss", "vmem")
        for soft_or_hard in ("s", "h")
    ),
)

PE_TEMPLATE = (
    ("pe_name", "template"),
    ("slots", "0"),
    ("user_lists", "NONE"),
    ("xuser_lists", "NONE"),
    ("start_proc_args", "NONE"),
    ("stop_proc_args", "NONE"),
    ("allocation_rule", "$pe_slots"),
    ("control_slaves", "FALSE"),
    ("job_is_first_task", "TRUE"),
    ("urgency_slots", "min"),
    ("accounting_summary", "FALSE"),
    ("qsort_args", "NONE"),
)

HOSTGROUP_TEMPLATE = (("group_name", "@template"), ("hostlist", "NONE"))

KINDS: dict[str, Kind] = {
    "queue": Kind(
        show="-sq",
        add="-Aq",
        modify="-Mq",
        delete="-dq",
        listing="-sql",
        name_key="qname",
        template=QUEUE_TEMPLATE,
    ),
    "pe": Kind(
        show="-sp",
        add="-Ap",
        modify="-Mp",
        delete="-dp",
        listing="-spl",
        name_key="pe_name",
        template=PE_TEMPLATE,
    ),
    "hostgroup": Kind(
        show="-shgrp",
        add="-Ahgrp",
        modify="-Mhgrp",
        delete="-dhgrp",
        listing="-shgrpl",
        name_key="group_name",
        template=HOSTGROUP_TEMPLATE,
    ),
    "scheduler": Kind(show="-ssconf", modify="-Msconf", singleton=True),
    "global": Kind(show="-sconf", modify="-Mconf", singleton=True, file_name="global"),
}

# Attributes whose value is a set of words: qconf may print them in another order.
WORD_SET_ATTRIBUTES = frozenset(
    {
        "hostlist",
        "pe_list",
        "qtype",
        "ckpt_list",
        "user_lists",
        "xuser_lists",
        "owner_list",
        "projects",
        "xprojects",
    }
)
# Attributes whose value is a comma list with optional [host=value] overrides.
COMMA_LIST_ATTRIBUTES = frozenset(
    {
        "slots",
        "complex_values",
        "seq_no",
        "load_thresholds",
        "suspend_thresholds",
        "params",
        "qmaster_params",
        "execd_params",
        "reporting_params",
        "job_load_adjustments",
        "usage_weight_list",
    }
)


def parse_object(text: str) -> dict[str, str]:
    """Parse qconf's ``key value`` listing into an ordered dict of normalised values.

    Continuation lines are joined as `sge.parse_config` does, so a wrapped list reads
    the same as an unwrapped one; each value is then normalised for comparison.
    """
    return {key: normalize(key, value) for key, value in parse_config(text).items()}


def normalize(key: str, value: object) -> str:
    """The canonical text of one attribute value, for comparison and for writing."""
    if isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, list | tuple):
        text = " ".join(str(item) for item in value) if value else "NONE"
    else:
        text = str(value)
    text = " ".join(text.split())
    text = re.sub(r"\s*,\s*", ",", text)
    text = re.sub(r"\s*=\s*", "=", text)
    if key in WORD_SET_ATTRIBUTES and text.upper() != "NONE":
        text = " ".join(sorted(set(text.split())))
    if key in COMMA_LIST_ATTRIBUTES:
        text = _sort_overrides(text)
    return text


def _sort_overrides(text: str) -> str:
    """Order the ``[host=value]`` overrides of a comma list (qconf keeps its own order)."""
    parts = split_top_level(text)
    plain = [part for part in parts if not part.startswith("[")]
    overrides = sorted(part for part in parts if part.startswith("["))
    return ",".join(plain + overrides)


def values_equal(key: str, left: str, right: str) -> bool:
    """Compare two values as qconf means them (case-insensitive NONE/TRUE/FALSE)."""
    left, right = normalize(key, left), normalize(key, right)
    if left == right:
        return True
    keywords = {"NONE", "TRUE", "FALSE", "INFINITY", "UNDEFINED"}
    return left.upper() == right.upper() and left.upper() in keywords


def wanted_object(
    kind: Kind, name: str | None, current: Mapping[str, str] | None, attributes: Mapping
) -> dict[str, str]:
    """The full object to write: the current one (or the template) with `attributes` set."""
    base = dict(current) if current is not None else dict(kind.template)
    if kind.name_key and name is not None:
        base[kind.name_key] = name
    for key, value in attributes.items():
        base[key] = normalize(key, value)
    return base


def differences(
    current: Mapping[str, str] | None, wanted: Mapping[str, str]
) -> dict[str, tuple[str | None, str]]:
    """Attribute -> (before, after) for every attribute whose value would change."""
    changes: dict[str, tuple[str | None, str]] = {}
    for key, value in wanted.items():
        before = None if current is None else current.get(key)
        if before is None or not values_equal(key, before, value):
            changes[key] = (before, value)
    return changes


def unknown_attributes(
    kind: Kind, current: Mapping[str, str] | None, attributes: Mapping
) -> list[str]:
    """Attributes the caller set that this kind of object does not have."""
    known = set(current) if current is not None else {key for key, _value in kind.template}
    if not known:
        return []
    return sorted(set(attributes) - known)


def render_object(obj: Mapping[str, str]) -> str:
    """The file qconf -A<kind>/-M<kind> reads: one ``key value`` line per attribute."""
    width = max((len(key) for key in obj), default=0) + 1
    return "".join(f"{key.ljust(width)}{value}\n" for key, value in obj.items())
