"""Step ids and their folder numbers: the order of the story, in one place."""
from __future__ import annotations

STEP_IDS = ("synth", "floorplan", "place", "route", "timing", "gds", "verify")

STEP_TITLES = {
    "synth": "Synthesis",
    "floorplan": "Floorplan",
    "place": "Placement",
    "route": "Routing",
    "timing": "Timing & power",
    "gds": "GDSII",
    "verify": "Verification",
}


def step_folder(step_id: str) -> str:
    if step_id not in STEP_IDS:
        raise KeyError(f"unknown step '{step_id}'; steps are {', '.join(STEP_IDS)}")
    return f"{STEP_IDS.index(step_id) + 1:02d}-{step_id}"
