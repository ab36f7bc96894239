"""How far setResources raises a memory limit that containers are OOM-killed at (pure).

The new limit comes from what was observed: the peak working set (the metrics agent's
``container_memory_working_set_bytes`` maximum over its window) with headroom, and at
least the current limit raised by the action's factor (``memoryIncreasePercent``, 50 by
default: a peak seen by a container killed at its limit is censored by the kill, so it
alone cannot say how much more is needed), and room for a fixed heap the program is told
to use (``-Xmx``, ``--max-old-space-size``) with what it needs besides. Never more than twice the current limit in one
action, rounded to a step people would write (16Mi below 1Gi, 64Mi below 4Gi, 256Mi
above), downwards, so that the result never passes the factor or the cap. The policy's bounds are checked on
the result (``aisre.remediation.policy.check_bounds``).
"""

from __future__ import annotations

import math
import re
from typing import Any

MI = 2**20
GI = 2**30
HEADROOM = 1.3  # above the observed peak
MAX_FACTOR = 2.0  # of the current limit, in one action
DEFAULT_INCREASE_PERCENT = 50


def step_of(size: float) -> int:
    return 16 * MI if size < GI else (64 * MI if size < 4 * GI else 256 * MI)


# A heap the program is told to use, and what it needs besides (JVM metaspace, code cache,
# thread stacks and direct buffers; V8's young generation and code space): the limit must
# hold both, or the kernel kills the process before its own heap limit is reached.
HEAP_HEADROOM = 1.3
_SIZE = {"": 1, "k": 2**10, "m": MI, "g": GI, "t": 2**40}
_JAVA_HEAP = re.compile(r"(?:^|\s)-(?:Xmx|XX:MaxHeapSize=)(\d+)([kKmMgGtT]?)(?=\s|$)")
_V8_HEAP = re.compile(r"(?:^|\s)--max[-_]old[-_]space[-_]size[= ](\d+)(?=\s|$)")  # MiB


def heap_bytes(texts: list[str]) -> int | None:
    """The largest fixed heap limit set in a container's command, arguments or environment
    values (-Xmx, -XX:MaxHeapSize, --max-old-space-size), in bytes; None when none is (a
    heap given as a share of the limit grows with it)."""
    sizes: list[int] = []
    for text in texts:
        sizes += [int(n) * _SIZE[unit.lower()] for n, unit in _JAVA_HEAP.findall(text)]
        sizes += [int(n) * MI for n in _V8_HEAP.findall(text)]
    return max(sizes) if sizes else None


def heap_of(container: dict[str, Any]) -> int | None:
    """The fixed heap a container's command, arguments or literal env values set."""
    return heap_bytes([str(t) for t in [*(container.get("command") or []), *(container.get("args") or []),
                                        *(e.get("value") for e in container.get("env") or [] if e.get("value"))]])


def new_memory_limit(current: int, peak: int | None = None, percent: int | None = None,
                     previous: int | None = None, heap: int | None = None) -> int:
    """The new limit in bytes for a container limited at ``current`` bytes (``previous``: the
    limit before the rollout that cut it, if one did; ``heap``: the fixed heap the program
    is told to use)."""
    if current <= 0:
        raise ValueError("a memory limit must be positive")
    factor = 1 + (DEFAULT_INCREASE_PERCENT if percent is None else int(percent)) / 100
    wanted = min(max(current * factor, (peak or 0) * HEADROOM, previous or 0, (heap or 0) * HEAP_HEADROOM),
                 current * MAX_FACTOR)
    # Downwards to the step: rounding up could pass the policy's percentage bound.
    rounded = math.floor(wanted / step_of(wanted)) * step_of(wanted)
    if rounded <= current:  # a step coarser than the raise: whole MiB then
        rounded = math.floor(wanted / MI) * MI
    return int(max(rounded, current + MI))


def quantity(size: int) -> str:
    """Bytes as Gi when whole, else Mi (rounded up)."""
    return f"{size // GI}Gi" if size % GI == 0 else f"{math.ceil(size / MI)}Mi"


def increase_percent(current: int, new: int) -> int:
    return math.ceil((new - current) * 100 / current)
