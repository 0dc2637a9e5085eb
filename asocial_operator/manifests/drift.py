"""Does a live object still carry every field we set? Pure comparison; no I/O.

The API server adds defaults and status to what we apply, so "in sync" means
the desired manifest is contained in the live object: every mapping key we
set has an equal value, lists match element by element.
"""

from __future__ import annotations

from typing import Any


def contains(live: Any, desired: Any) -> bool:
    """True when ``desired`` is a sub-document of ``live``."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(lv, dv) for lv, dv in zip(live, desired, strict=True))
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    return bool(live == desired)


def in_sync(live: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    """Whether applying ``desired`` would change nothing we own."""
    if live is None:
        return False
    meta = live.get("metadata", {})
    if meta.get("deletionTimestamp"):
        return False
    return contains(live, desired)
