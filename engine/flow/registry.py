"""Step ids and their folder numbers: the order of the story, in one place."""
from __future__ import annotations

STEP_IDS = ("synth", "floorplan", "place", "cts", "route", "timing", "gds", "checks", "verify")

STEP_TITLES = {
    "synth": "Synthesis",
    "floorplan": "Floorplan",
    "place": "Placement",
    "cts": "Clock tree",
    "route": "Routing",
    "timing": "Timing & power",
    "gds": "GDSII",
    "checks": "Signoff checks",
    "verify": "Verification",
}

# Folder of each step in a run. The numbers are those of the seven steps runs were saved with before the clock
# tree came; cts sits between 03-place and 04-route without renumbering them, so old runs keep opening (and the
# signoff checks between 06-gds and 07-verify the same way).
STEP_FOLDERS = {
    "synth": "01-synth",
    "floorplan": "02-floorplan",
    "place": "03-place",
    "cts": "03b-cts",
    "route": "04-route",
    "timing": "05-timing",
    "gds": "06-gds",
    "checks": "06b-checks",
    "verify": "07-verify",
}


def step_folder(step_id: str) -> str:
    if step_id not in STEP_IDS:
        raise KeyError(f"unknown step '{step_id}'; steps are {', '.join(STEP_IDS)}")
    return STEP_FOLDERS[step_id]
