# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by the segway.cluster Grid Engine modules."""

from __future__ import annotations


class ModuleDocFragment:
    # Where the Grid Engine installation is: the options of
    # plugins/module_utils/sge.py's sge_argument_spec(), which every SGE module takes.
    # The modules are in the action group segway.cluster.sge, so a play or role can set
    # both once with module_defaults.
    DOCUMENTATION = r"""
options:
  sge_root:
    description:
      - Grid Engine root directory. C(qconf) is looked for in C(SGE_ROOT/bin/ARCH/), then
        on E(PATH).
      - If not set, the E(SGE_ROOT) environment variable of the target host is used, then
        Debian's V(/var/lib/gridengine).
      - Set it once for every SGE module of a play or block with
        C(module_defaults) and the group C(group/segway.cluster.sge).
    type: path
    default: /var/lib/gridengine
  sge_cell:
    description:
      - Grid Engine cell name.
      - If not set, the E(SGE_CELL) environment variable of the target host is used, then
        V(default).
    type: str
    default: default
attributes:
  action_group:
    description: Use C(group/segway.cluster.sge) in C(module_defaults) to set default
      values for this module.
    support: full
    membership:
      - segway.cluster.sge
"""
