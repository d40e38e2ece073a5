# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Grid Engine (SGE) helpers shared by the segway.cluster SGE modules.

Everything above the ``Qconf`` class is pure: it parses the text that ``qconf`` prints
(``-sc``, ``-se HOST``, ``-sq QUEUE``, ``-sel``, ``-sql``, ``-sm``), renders the text that
``qconf -Mc`` reads, and validates values the way Son of Grid Engine 8.1.9's qmaster does.
Unit tests drive these functions with text captured from a real qmaster.

``Qconf`` is the only part that runs anything. It takes the ``run_command`` of an
``AnsibleModule`` (or any callable with the same signature), so that every SGE module finds
``qconf`` the same way, tells its failures apart the same way, and writes through files
(``-Mc``/``-mattr``), never through an editor.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from ansible.module_utils.common.parameters import env_fallback

DEBIAN_SGE_ROOT = "/var/lib/gridengine"
DEFAULT_SGE_CELL = "default"


def sge_argument_spec() -> dict[str, dict]:
    """The options every SGE module takes to find the installation: sge_root, sge_cell.

    Documented once in plugins/doc_fragments/sge.py. A module adds its own options to a
    fresh copy (``{**sge_argument_spec(), ...}``). The target's SGE_ROOT / SGE_CELL come
    before the defaults, as for a login shell that sourced Grid Engine's settings.
    """
    return {
        "sge_root": {
            "type": "path",
            "default": DEBIAN_SGE_ROOT,
            "fallback": (env_fallback, ["SGE_ROOT"]),
        },
        "sge_cell": {
            "type": "str",
            "default": DEFAULT_SGE_CELL,
            "fallback": (env_fallback, ["SGE_CELL"]),
        },
    }


COMPLEX_TYPES = ("INT", "DOUBLE", "MEMORY", "BOOL", "STRING", "CSTRING", "RESTRING", "TIME", "HOST")
NUMERIC_TYPES = frozenset({"INT", "DOUBLE", "MEMORY", "TIME"})
STRING_TYPES = frozenset({"STRING", "CSTRING", "RESTRING", "HOST"})
RELOPS = ("==", "!=", "<", "<=", ">", ">=", "EXCL")
REQUESTABLE = ("YES", "NO", "FORCED")
CONSUMABLE = ("YES", "NO", "JOB", "HOST")
COMPLEX_FIELDS = (
    "name",
    "shortcut",
    "type",
    "relop",
    "requestable",
    "consumable",
    "default",
    "urgency",
)

# The host record that holds cluster-wide complex values (`qconf -se global`).
GLOBAL_HOST = "global"

# Multipliers of SGE memory specifiers: lower case are powers of 1000, upper case powers
# of 1024 (checked with `qhost -F` on a real qmaster: 1k -> 1000, 1K -> 1.000K).
MULTIPLIERS: dict[str, int] = {
    "k": 1000,
    "K": 1024,
    "m": 1000**2,
    "M": 1024**2,
    "g": 1000**3,
    "G": 1024**3,
    "t": 1000**4,
    "T": 1024**4,
}

# What qmaster reads as a number: 0x1F is hex, 017 octal (08 is refused), 1.5 and 1e3
# decimal; then one optional multiplier. No sign: SGE refuses negative
# consumables, and a negative memory size is always a mistake.
_NUMBER_RE = re.compile(
    r"^(?:(?P<hex>0[xX][0-9a-fA-F]+)"
    r"|(?P<oct>0[0-7]+)"
    r"|(?P<dec>(?:[1-9]\d*|0|\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?))"
    r"(?P<mult>[kKmMgGtT])?$"
)
_TIME_HMS_RE = re.compile(r"^(\d+):(\d+):(\d+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_BOOL_TRUE = frozenset({"TRUE", "1"})
_BOOL_FALSE = frozenset({"FALSE", "0"})

NUMBER_SYNTAX = (
    "a non-negative number (decimal, or 0x hexadecimal / leading-0 octal as SGE reads it) "
    "with an optional multiplier k, K, m, M, g, G, t or T (lower case x1000, upper case "
    "x1024), e.g. 4G or 512M"
)


# --------------------------------------------------------------------------- complexes


@dataclass(frozen=True)
class ComplexEntry:
    """One line of `qconf -sc`: the definition of a complex attribute."""

    name: str
    shortcut: str
    type: str
    relop: str
    requestable: str
    consumable: str
    default: str
    urgency: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def fields(self) -> tuple[str, ...]:
        return tuple(getattr(self, field) for field in COMPLEX_FIELDS)

    def line(self) -> str:
        """The entry as one line, fields separated by single spaces."""
        return " ".join(self.fields())


def make_complex(**fields: object) -> ComplexEntry:
    """Build an entry from loose input: values become stripped strings, keywords upper case.

    qconf itself upper-cases type, requestable and consumable (`yes` is shown as `YES`).
    """
    values = {field: str(fields[field]).strip() for field in COMPLEX_FIELDS}
    for field in ("type", "requestable", "consumable"):
        values[field] = values[field].upper()
    if values["relop"].upper() == "EXCL":
        values["relop"] = "EXCL"
    return ComplexEntry(**values)


def parse_complex_list(text: str) -> list[ComplexEntry]:
    """Parse `qconf -sc` output (or a -Mc file) into entries, skipping comment lines."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != len(COMPLEX_FIELDS):
            raise ValueError(
                f"line {number} of the complex list has {len(parts)} fields, "
                f"expected {len(COMPLEX_FIELDS)}: {raw!r}"
            )
        entries.append(make_complex(**dict(zip(COMPLEX_FIELDS, parts, strict=True))))
    return entries


def render_complex_list(entries: Sequence[ComplexEntry]) -> str:
    """Render entries in the column layout of `qconf -sc`, ready for `qconf -Mc FILE`."""
    header = ("#" + COMPLEX_FIELDS[0], *COMPLEX_FIELDS[1:])
    rows = [entry.fields() for entry in entries]
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(len(header) - 1)]

    def fmt(row: Sequence[str]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        return " ".join([*cells, row[-1]]).rstrip()

    ruler = "#" + "-" * len(fmt(header))
    lines = [fmt(header), ruler] + [fmt(row) for row in rows]
    lines.append("# >#< starts a comment but comments are not saved across edits --------")
    return "\n".join(lines) + "\n"


def find_complex(entries: Iterable[ComplexEntry], name: str) -> ComplexEntry | None:
    for entry in entries:
        if entry.name == name:
            return entry
    return None


def upsert_complex(entries: Sequence[ComplexEntry], wanted: ComplexEntry) -> list[ComplexEntry]:
    """The list with `wanted` replacing the entry of the same name, or appended to it."""
    result = [wanted if entry.name == wanted.name else entry for entry in entries]
    if find_complex(entries, wanted.name) is None:
        result.append(wanted)
    return result


def remove_complex(entries: Sequence[ComplexEntry], name: str) -> list[ComplexEntry]:
    return [entry for entry in entries if entry.name != name]


def name_conflicts(entries: Iterable[ComplexEntry], wanted: ComplexEntry) -> list[str]:
    """Other entries whose name or shortcut clashes with the name or shortcut of `wanted`.

    qmaster refuses such an entry ("complex with name X or shortcut Y already exists").
    """
    mine = {wanted.name, wanted.shortcut}
    return [
        f"{entry.name} (shortcut {entry.shortcut})"
        for entry in entries
        if entry.name != wanted.name and {entry.name, entry.shortcut} & mine
    ]


# --------------------------------------------------------------------------- values


def parse_number(value: str) -> float:
    """Read an INT/DOUBLE/MEMORY value as qmaster does; ValueError for anything else.

    Refused: signs (`-1G`), unknown units (`3X`, `4GB`), `INFINITY`, blanks.
    """
    match = _NUMBER_RE.match(value)
    if not match:
        raise ValueError(value)
    if match.group("hex"):
        number = float(int(match.group("hex"), 16))
    elif match.group("oct"):
        number = float(int(match.group("oct"), 8))
    else:
        number = float(match.group("dec"))
    return number * MULTIPLIERS.get(match.group("mult") or "", 1)


def parse_signed_number(value: str) -> float:
    """A number as `parse_number` reads it, with an optional sign (urgency weights)."""
    if value.startswith(("+", "-")):
        sign = -1.0 if value.startswith("-") else 1.0
        return sign * parse_number(value[1:])
    return parse_number(value)


def parse_time(value: str) -> float:
    """Seconds of a TIME value: `h:m:s` or a number of seconds."""
    match = _TIME_HMS_RE.match(value)
    if match:
        hours, minutes, seconds = (int(part) for part in match.groups())
        return float(hours * 3600 + minutes * 60 + seconds)
    return parse_number(value)


def parse_bool(value: str) -> bool:
    upper = value.upper()
    if upper in _BOOL_TRUE:
        return True
    if upper in _BOOL_FALSE:
        return False
    raise ValueError(value)


def value_syntax(ctype: str) -> str:
    """What a value of complex type `ctype` looks like, for error messages."""
    if ctype in ("INT", "DOUBLE", "MEMORY"):
        return NUMBER_SYNTAX
    if ctype == "TIME":
        return "a time as h:m:s or seconds, e.g. 1:30:00 or 5400"
    if ctype == "BOOL":
        return "TRUE, FALSE, 1 or 0"
    return "a word without commas or blanks"


def typed_value(ctype: str, value: str) -> object:
    """`value` read as a value of complex type `ctype`; ValueError if it is not one."""
    if ctype in ("INT", "DOUBLE", "MEMORY"):
        return parse_number(value)
    if ctype == "TIME":
        return parse_time(value)
    if ctype == "BOOL":
        return parse_bool(value)
    if not value or re.search(r"[\s,]", value):
        raise ValueError(value)
    return value


def check_value(ctype: str, value: str, option: str) -> str | None:
    """An error message naming `option` and `value` if `value` is not a `ctype` value."""
    try:
        typed_value(ctype, value)
    except ValueError:
        return f"{option}={value!r} is not a valid {ctype} value: expected {value_syntax(ctype)}"
    return None


def values_equal(ctype: str, left: str, right: str) -> bool:
    """Whether two textual values mean the same to SGE (e.g. `1G` and `1024M`)."""
    if left == right:
        return True
    try:
        return typed_value(ctype, left) == typed_value(ctype, right)
    except ValueError:
        return False


def is_zero(ctype: str, value: str) -> bool:
    """Whether `value` is the zero (numbers, BOOL) or NONE (strings) of type `ctype`."""
    if ctype in STRING_TYPES:
        return value.upper() == "NONE"
    try:
        return not typed_value(ctype, value)
    except ValueError:
        return False


def complex_equal(left: ComplexEntry, right: ComplexEntry) -> bool:
    """Whether two entries define the same complex (default and urgency compared as values)."""
    keys = ("name", "shortcut", "type", "relop", "requestable", "consumable")
    if any(getattr(left, key) != getattr(right, key) for key in keys):
        return False
    if not values_equal(left.type, left.default, right.default):
        return False
    try:
        return parse_signed_number(left.urgency) == parse_signed_number(right.urgency)
    except ValueError:
        return left.urgency == right.urgency


# --------------------------------------------------------------------------- validation


def complex_errors(entry: ComplexEntry) -> list[str]:
    """Why qmaster would refuse `entry`: one message per problem, naming options and values.

    The rules mirror SGE 8.1.9's centry_elem_validate(); each was checked against a real
    qmaster (`qconf -Mc` refused, or accepted, the same lines).
    """
    errors = []
    for option in ("name", "shortcut"):
        value = getattr(entry, option)
        if not _NAME_RE.match(value):
            errors.append(
                f"{option}={value!r} is not a valid complex name: "
                "use letters, digits, '_', '.' and '-'"
            )
    choices = (
        ("type", COMPLEX_TYPES),
        ("relop", RELOPS),
        ("requestable", REQUESTABLE),
        ("consumable", CONSUMABLE),
    )
    for option, allowed in choices:
        value = getattr(entry, option)
        if value not in allowed:
            errors.append(f"{option}={value!r} is not one of {', '.join(allowed)}")
    if errors:
        return errors
    errors.extend(_relop_errors(entry))
    errors.extend(_default_errors(entry))
    try:
        parse_signed_number(entry.urgency)
    except ValueError:
        errors.append(f"urgency={entry.urgency!r} is not a number")
    return errors


def _relop_errors(entry: ComplexEntry) -> list[str]:
    ctype, relop, consumable = entry.type, entry.relop, entry.consumable != "NO"
    pair = f"type={ctype} with relop={relop}"
    with_consumable = f"{pair} and consumable={entry.consumable} is rejected by SGE"
    if ctype in STRING_TYPES:
        rules = [
            (
                relop not in ("==", "!="),
                f"{pair} is rejected by SGE: {ctype} complexes allow only == and !=",
            ),
            (
                consumable,
                f"type={ctype} with consumable={entry.consumable} is rejected by SGE: only INT, "
                "DOUBLE, MEMORY, TIME (relop <=) and BOOL (relop EXCL) can be consumable",
            ),
        ]
    elif ctype == "BOOL":
        rules = [
            (
                relop not in ("==", "EXCL"),
                f"{pair} is rejected by SGE: BOOL complexes allow only == and EXCL",
            ),
            (
                relop == "EXCL" and not consumable,
                f"{with_consumable}: EXCL needs consumable YES or JOB",
            ),
            (
                relop == "==" and consumable,
                f"{with_consumable}: a consumable BOOL must use relop EXCL",
            ),
        ]
    else:
        rules = [
            (relop == "EXCL", f"{pair} is rejected by SGE: only BOOL complexes can use EXCL"),
            (
                consumable and relop not in ("<=", "EXCL"),
                f"{with_consumable}: consumables allow only relop <=",
            ),
        ]
    return [message for failed, message in rules if failed]


def _default_errors(entry: ComplexEntry) -> list[str]:
    ctype, default, consumable = entry.type, entry.default, entry.consumable != "NO"
    refused = f"default={default!r} is rejected by SGE"
    if ctype in STRING_TYPES:
        rules = [
            (default.upper() != "NONE", f"{refused}: {ctype} complexes must have default NONE")
        ]
    else:
        problem = check_value(ctype, default, "default")
        if problem:
            return [problem]
        zero = is_zero(ctype, default)
        rules = [
            (
                not consumable and not zero,
                f"{refused}: only a consumable may have a non-zero default (consumable=NO)",
            ),
            (
                consumable and entry.requestable == "NO" and zero,
                f"{refused}: a consumable with requestable=NO needs a non-zero default",
            ),
            (
                consumable and entry.requestable == "FORCED" and not zero,
                f"{refused}: a consumable with requestable=FORCED must have default 0",
            ),
        ]
    return [message for failed, message in rules if failed]


def host_value_errors(ctype: str, host_values: Mapping[str, str]) -> list[str]:
    """Problems with per-host values of a complex of type `ctype`, naming host and value."""
    errors = []
    for host, value in host_values.items():
        problem = check_value(ctype, value, f"host_values[{host}]")
        if problem:
            errors.append(problem)
    return errors


# --------------------------------------------------------------------------- configurations


def parse_config(text: str) -> dict[str, str]:
    """Parse `qconf -se/-sq/-sconf` output: `key value` lines with `\\` continuations.

    A continued line is joined to the next with one space, without the backslash and the
    next line's indentation, and a comma keeps no space after it: this undoes how qconf
    wraps long space-separated lists (host lists) and comma-separated lists alike.
    """
    config: dict[str, str] = {}
    pending: list[str] = []
    for raw in [*text.splitlines(), ""]:
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        key, _sep, value = " ".join(part for part in pending if part).partition(" ")
        config[key] = re.sub(r",\s+", ",", value.strip())
        pending = []
    return config


def split_top_level(value: str, separator: str = ",") -> list[str]:
    """Split on `separator` outside square brackets (queue `[host=...]` overrides)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in value:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_complex_values(value: str) -> dict[str, str]:
    """`complex_values` of an exec host: `NONE` or `name=value,name=value`."""
    value = value.strip()
    if not value or value.upper() == "NONE":
        return {}
    result = {}
    for item in split_top_level(value):
        name, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"complex_values item {item!r} has no '='")
        result[name.strip()] = val.strip()
    return result


def render_complex_values(values: Mapping[str, str]) -> str:
    if not values:
        return "NONE"
    return ",".join(f"{name}={value}" for name, value in values.items())


def parse_queue_complex_values(value: str) -> dict[str, dict[str, str]]:
    """Queue `complex_values`: a default list plus `[host=list]` / `[@hgroup=list]` overrides.

    Returns scope -> values; the queue-wide list is under the key ``""``.
    """
    result: dict[str, dict[str, str]] = {}
    for item in split_top_level(value):
        if item.startswith("[") and item.endswith("]"):
            scope, _sep, rest = item[1:-1].partition("=")
            result[scope.strip()] = parse_complex_values(rest)
        else:
            result.setdefault("", {}).update(parse_complex_values(item))
    return result


def parse_name_list(text: str) -> list[str]:
    """Output of `qconf -sel`, `-sql`, `-sm`: one name per line.

    qconf's notices such as "no cqueue list defined" are not names.
    """
    names = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and " " not in line:
            names.append(line)
    return names


def host_value_changes(
    ctype: str, name: str, current: Mapping[str, Mapping[str, str]], wanted: Mapping[str, str]
) -> dict[str, tuple[str | None, str]]:
    """Hosts whose value of complex `name` differs: host -> (current value or None, wanted)."""
    changes = {}
    for host, value in wanted.items():
        have = current.get(host, {}).get(name)
        if have is None or not values_equal(ctype, have, value):
            changes[host] = (have, value)
    return changes


# --------------------------------------------------------------------------- qconf


class QconfError(Exception):
    """qconf failed. `kind` is one of: unreachable, denied, cell, rejected."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


_UNREACHABLE_MARKERS = (
    "unable to send message to qmaster",
    "unable to contact qmaster",
    "commlib error",
    "can't find connection",
)
_DENIED_MARKERS = (
    "must be manager",
    "must be operator",
    "denied: access",
    "no admin host",
    "neither submit nor admin host",
)
_CELL_MARKERS = ("cell directory", "please set the environment variable")


def classify_failure(output: str) -> str:
    """The `QconfError.kind` for the combined output of a failed qconf."""
    lowered = output.lower()
    for kind, markers in (
        ("unreachable", _UNREACHABLE_MARKERS),
        ("denied", _DENIED_MARKERS),
        ("cell", _CELL_MARKERS),
    ):
        if any(marker in lowered for marker in markers):
            return kind
    return "rejected"


def find_qconf(
    sge_root: str,
    arch: str | None = None,
    which: Callable[[str], str | None] | None = None,
) -> str | None:
    """Path of qconf: $SGE_ROOT/bin/<arch>/qconf, else any $SGE_ROOT/bin/*/qconf, else PATH."""
    candidates = []
    if arch:
        candidates.append(os.path.join(sge_root, "bin", arch, "qconf"))
    candidates.extend(sorted(glob.glob(os.path.join(sge_root, "bin", "*", "qconf"))))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return which("qconf") if which else None


RunCommand = Callable[..., tuple[int, str, str]]


class Qconf:
    """Runs qconf for one SGE root and cell through an AnsibleModule's run_command."""

    def __init__(
        self,
        run_command: RunCommand,
        binary: str,
        sge_root: str,
        sge_cell: str,
        tmpdir: str | None = None,
    ) -> None:
        self._run_command = run_command
        self.binary = binary
        self.sge_root = sge_root
        self.sge_cell = sge_cell
        self.tmpdir = tmpdir

    @property
    def environ(self) -> dict[str, str]:
        return {"SGE_ROOT": self.sge_root, "SGE_CELL": self.sge_cell}

    def run(self, *args: str) -> str:
        """Run `qconf ARGS`; return stdout, or raise QconfError carrying qconf's own words."""
        rc, out, err = self._run_command([self.binary, *args], environ_update=self.environ)
        if rc != 0:
            output = "\n".join(part.strip() for part in (err, out) if part and part.strip())
            raise QconfError(
                classify_failure(output), f"`qconf {' '.join(args)}` failed (rc={rc}): {output}"
            )
        return out

    def run_with_file(self, option: str, content: str, *args: str) -> str:
        """Run `qconf OPTION FILE ARGS` with `content` in a temporary file."""
        handle, path = tempfile.mkstemp(prefix="sge_", suffix=".txt", dir=self.tmpdir)
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(content)
            return self.run(option, path, *args)
        finally:
            os.unlink(path)

    # -- reading
    def complexes(self) -> list[ComplexEntry]:
        return parse_complex_list(self.run("-sc"))

    def names(self, option: str, none_defined: str) -> list[str]:
        """Names qconf lists with OPTION; [] where qconf fails saying `none_defined`."""
        try:
            return parse_name_list(self.run(option))
        except QconfError as error:
            if none_defined in error.message:
                return []
            raise

    def exec_hosts(self) -> list[str]:
        return self.names("-sel", "no execution host defined")

    def exec_host(self, host: str) -> dict[str, str]:
        return parse_config(self.run("-se", host))

    def host_complex_values(self, host: str) -> dict[str, str]:
        return parse_complex_values(self.exec_host(host).get("complex_values", "NONE"))

    def queues(self) -> list[str]:
        return self.names("-sql", "no cqueue list defined")

    def queue(self, name: str) -> dict[str, str]:
        return parse_config(self.run("-sq", name))

    def managers(self) -> list[str]:
        return parse_name_list(self.run("-sm"))

    # -- writing
    def modify_complexes(self, entries: Sequence[ComplexEntry]) -> str:
        """Replace the whole complex list (`qconf -Mc FILE`)."""
        return self.run_with_file("-Mc", render_complex_list(entries))

    def set_host_complex_value(self, host: str, name: str, value: str) -> str:
        """Set one complex value on one exec host, keeping its other values (`-mattr`)."""
        return self.run("-mattr", "exechost", "complex_values", f"{name}={value}", host)

    # -- queries built on the above
    def complex_references(self, name: str) -> dict[str, list[str]]:
        """Exec hosts (`global` included) and queues whose complex_values name `name`."""
        hosts = [
            host
            for host in [GLOBAL_HOST, *self.exec_hosts()]
            if name in self.host_complex_values(host)
        ]
        queues = []
        for queue in self.queues():
            scopes = parse_queue_complex_values(self.queue(queue).get("complex_values", "NONE"))
            if any(name in values for values in scopes.values()):
                queues.append(queue)
        return {"hosts": hosts, "queues": queues}
