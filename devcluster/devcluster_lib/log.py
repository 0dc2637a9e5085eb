"""Progress lines on stderr, each prefixed with the part of the devcluster that speaks."""

from __future__ import annotations

import sys
from collections.abc import Callable


def scoped(scope: str = "") -> Callable[[str], None]:
    """A function that prints ``[devcluster <scope>] <message>`` to stderr at once."""
    prefix = f"[devcluster {scope}]" if scope else "[devcluster]"

    def say(message: str) -> None:
        print(f"{prefix} {message}", file=sys.stderr, flush=True)

    return say
