"""Shared pytest setup: make this repository importable as the collection.

The repository root *is* the collection ``segway.cluster``. Ansible (and Python)
find it as ``ansible_collections.segway.cluster`` through the symlink
``.collections/ansible_collections/segway/cluster -> <repo>``, which ``make setup``
creates and ``ansible.cfg`` names in ``collections_path``. This file creates the
same link when pytest runs without ``make setup`` and puts it on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".collections"


def _ensure_collection_link() -> None:
    link = COLLECTIONS / "ansible_collections" / "segway" / "cluster"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(REPO, link.parent))
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))


_ensure_collection_link()
