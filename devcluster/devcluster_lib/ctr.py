"""Images into the node's containerd (namespace ``k8s.io``, where the kubelet looks),
each archive imported once: a marker beside it records the digest containerd gave it,
and it is imported again when containerd no longer holds that digest (a new node, or a
new build under the same tag)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import log

say = log.scoped("images")


@dataclass(frozen=True)
class Containerd:
    """A containerd to import into: its ``ctr`` binary and its socket."""

    ctr: Path
    socket: Path

    def run(self, *args: str) -> str:
        argv = [str(self.ctr), "--address", str(self.socket), "--namespace", "k8s.io", *args]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@dataclass(frozen=True)
class Archive:
    """An image archive and how ``ctr images import`` takes it."""

    ref: str
    path: Path
    options: tuple[str, ...] = ()
    """E.g. ``--base-name`` for an OCI layout, whose own tag is not a full name."""


def import_all(containerd: Containerd, archives: list[Archive]) -> None:
    """Import each archive unless containerd holds exactly that archive's image."""
    listing = containerd.run("images", "list")
    for archive in archives:
        marker = archive.path.with_suffix(".imported")
        if marker.exists() and (digest := marker.read_text().strip()) and digest in listing:
            continue
        containerd.run("images", "import", *archive.options, str(archive.path))
        rows = containerd.run("images", "list", f"name=={archive.ref}").splitlines()[1:]
        digest = rows[0].split()[2] if rows else ""
        marker.write_text(digest + "\n")
        say(f"imported {archive.ref} ({digest[:19]})")
