"""The long-lived objects a process made while starting, kept out of the garbage collector's full passes."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect once, then move every object alive now (modules, settings, URL patterns, the engine's registry: about
    150,000 in a web process) to the collector's permanent generation; returns how many.

    Python's full (oldest-generation) collection walks every tracked object while holding the GIL: in a checkout
    bench on a loaded machine one came during the run and held the web process (and any request in flight) 313 ms.
    Frozen objects are never walked again, so a full collection then walks only what requests and workflows made
    since (26 ms in the same bench). Cost: a start-up object that becomes cyclic garbage later is never freed
    (start-up builds, it rarely discards). See docs/decisions.md, "Full garbage collections leave out what a process
    started with".
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
