"""The analytical placer (ePlace/DREAMPlace class): global placement, legalization, detailed placement.

Heavy imports (torch) happen on first use of `place`, so `import engine.place.config` stays cheap.
"""
from __future__ import annotations

from engine.place.config import PlaceConfig
from engine.place.errors import PlaceError


def place(netlist, config=None, progress=None, cancel=None, on_frame=None):
    """See engine.place.api.place."""
    from engine.place.api import place as _place

    return _place(netlist, config, progress=progress, cancel=cancel, on_frame=on_frame)


__all__ = ["place", "PlaceConfig", "PlaceError"]
