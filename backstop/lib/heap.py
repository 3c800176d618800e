"""The long-lived objects a process made while starting, kept out of the garbage collector's full passes."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect once, then move every object alive now (modules, settings, URL patterns, the engine's registry: about
    150,000 in a web process) to the collector's permanent generation; returns how many.

    Python's full (oldest-generation) collection walks every tracked object while holding the GIL, and in a running
    server one comes every minute or so: a checkout that met one was measured waiting 313 ms on a loaded machine (the
    walk itself tens of milliseconds on a quiet one). Frozen objects are never walked again, so a full collection
    then walks only what requests and workflows made since. Cost: a startup object that becomes cyclic garbage later
    is never freed (startup builds, it rarely discards). See docs/decisions.md, "Checkout's one-client tail".
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
