"""What lets a ``relay`` command start and exit quickly: it runs once, then the process ends.

Most of a command's start-up is importing SQLAlchemy, pydantic (with our models) and httpx, which
make about a hundred thousand objects that live as long as the process. The cyclic garbage collector
would walk them again and again while they are made, and once more at exit, for nothing; so the
command pauses it while its imports run and then freezes what they made (:func:`gc.freeze`: later
collections, the one at exit included, skip those objects). Objects made afterwards, by the work,
are collected as usual, but the youngest generation is collected after 10,000 new objects instead of
700 (:data:`YOUNG_GENERATION_THRESHOLD`): a campaign keeps about a dozen objects a row until its
report, and at 700 the collector walked them again on every older-generation pass (80-90 ms of a
10,000-row relaysms campaign went to 290 collections; at 10,000, 25-55 ms to 16).

All of it applies only to a process started as the ``relay`` command (:func:`command_process`), never
to a program that calls :func:`relay_integrations.cli.main` among other work.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_command_process = False

#: The youngest generation's collection threshold in a ``relay`` process (Python's default is 700).
YOUNG_GENERATION_THRESHOLD = 10_000


def command_process() -> None:
    """This process runs one ``relay`` command and exits: start and stop it the quick way."""
    global _command_process
    _command_process = True
    _skip_httpx_command_line()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


def _skip_httpx_command_line() -> None:
    """Keep ``import httpx`` from importing httpx's own command line.

    httpx imports ``httpx._main`` (click, rich and pygments: ~20 ms) whenever those are installed,
    as they are next to Airflow; ``relay`` never calls ``httpx.main``, and httpx falls back to a stub
    when the module is absent. Only the ``relay`` process is affected, before it imports httpx.
    """
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None marks a module as absent


@contextmanager
def long_lived_imports() -> Iterator[None]:
    """Run imports with the collector paused, then freeze what they made (see the module doc)."""
    if not _command_process:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def before_exit() -> None:
    """Freeze everything still alive, so the collection at interpreter exit has nothing to walk."""
    if _command_process:
        gc.freeze()
