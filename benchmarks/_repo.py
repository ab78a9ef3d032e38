"""Makes ``tests`` this repository's tests package: the benchmarks run as
``python benchmarks/run.py``, with ``benchmarks/`` on the path, and share two helpers with the
tests, ``tests.redis_server`` and ``tests.fleet_worker``. A module that imports them imports
this module first (``import _repo``).

The repository root is on ``sys.path`` only while ``tests`` is imported, so that which
``oauth_cc_auth`` is measured stays what is installed or on ``PYTHONPATH``, as for the fleet's
worker processes.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)

sys.path.insert(0, ROOT)
try:
    importlib.import_module("tests")
finally:
    sys.path.remove(ROOT)
