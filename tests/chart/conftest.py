"""The chart tests: rendering with the pinned helm (no cluster). Test modules here and in
tests/cluster import chart_render from this folder (tests run in importlib mode)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
