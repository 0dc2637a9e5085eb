"""Bring-up as data: the cluster is an ordered list of :class:`Component` s, started in
order by ``up`` and stopped in reverse by ``down``, as kind runs its actions.

A component is one long-running process: its argv, what to prepare before it starts,
how to tell it is ready, what to do once it is (create objects, import images), and
how to stop it and undo what it changed outside the state dir. One without an argv is
a step with no process of its own (objects the cluster then runs, such as the edge
proxy's pod), with the same preparation, readiness and undo. Everything is a callable
so the list can be made before anything exists (``down`` never starts a thing) and
each value is computed only when its component starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import process

Check = Callable[[], tuple[bool, str]]
"""Returns (done, what it saw): the second part explains a timeout."""


@dataclass(frozen=True)
class Readiness:
    what: str
    check: Check
    timeout: float


@dataclass(frozen=True)
class Component:
    name: str
    argv: Callable[[], list[str]] | None
    env: Callable[[], dict[str, str]] | None = None
    prepare: Callable[[], None] | None = None
    """Before the process starts (configs, certificates, the node's network)."""
    ready: tuple[Readiness, ...] = ()
    """Waited for, in order, once it started, while every started process is watched."""
    then: Callable[[process.Proc | None], None] | None = None
    """Once it is ready, given its process (objects to create, images to import)."""
    undo: Callable[[], list[str]] | None = None
    """After its process stopped (or if it never ran): cleans up what it changed
    outside the state dir; returns what could not be undone."""


Spawn = Callable[[str, list[str], dict[str, str] | None], process.Proc]
Wait = Callable[[Readiness], None]


def start(
    components: Sequence[Component], *, spawn: Spawn, wait: Wait, say: Callable[[str], None]
) -> None:
    """Start each component in order, ready before the next one starts; ``say`` hears
    when each one is, with the seconds since the first began."""
    started = time.monotonic()
    for component in components:
        if component.prepare is not None:
            component.prepare()
        proc = None
        if component.argv is not None:
            env = component.env() if component.env is not None else None
            proc = spawn(component.name, component.argv(), env)
        for readiness in component.ready:
            wait(readiness)
        if component.then is not None:
            component.then(proc)
        say(f"{component.name} ready ({time.monotonic() - started:.1f}s)")


def stop(components: Sequence[Component], running: dict[str, process.Proc]) -> list[str]:
    """Stop the components in reverse order, each one's process and then its undo;
    returns the names of what could not be stopped or undone."""
    problems: list[str] = []
    for component in reversed(components):
        proc = running.get(component.name)
        if proc is not None and process.is_alive(proc):
            problems += process.stop([proc])
        if component.undo is not None:
            problems += component.undo()
    return problems
