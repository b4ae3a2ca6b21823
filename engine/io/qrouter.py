"""qrouter's console log (what ``qrouter -nog -s route.cfg`` prints, kept as qrouter.log): the nets it read, the
nets it left unrouted at the end and why, whether it finished, and the instances whose cell it had no LEF for.

A log is free text: what is not found is reported as not found (``nets`` None, ``finished`` False), never an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class QrouterReport:
    nets: int | None  # nets qrouter read
    failed: list[str]  # nets left unrouted at the end
    reasons: dict[str, str]  # failed net -> why, in words
    finished: bool  # qrouter printed its final summary


_NETS = re.compile(r"There are (\d+) nets in this design")
_FAILED = re.compile(r"Final: Failed net routes: (\d+)\s*\n\s*List of failed nets follows:\s*\n(.*?)(?:\n\s*\n|-{5,})",
                     re.S)
_NO_TAPS = re.compile(r'Node (\S+) of net "?([^"\s!]+)"? has no tap', re.I)
_NO_MACRO = re.compile(r'Could not find a macro definition for "([^"]+)"')


def parse_qrouter_log(text: str) -> QrouterReport:
    m = _NETS.search(text)
    nets = int(m.group(1)) if m else None
    finished = "Final:" in text
    failed: list[str] = []
    fm = _FAILED.search(text)
    if fm:
        failed = [ln.strip() for ln in fm.group(2).splitlines() if ln.strip()]
    reasons: dict[str, str] = {}
    no_taps = {net: node for node, net in _NO_TAPS.findall(text)}
    for net in failed:
        if net in no_taps:
            reasons[net] = (f"pin {no_taps[net]} has no access point on the routing grid (off-track or covered by "
                            "an obstruction)")
        else:
            reasons[net] = "no free path left after rip-up and reroute (congestion)"
    return QrouterReport(nets=nets, failed=failed, reasons=reasons, finished=finished)


def missing_macros(text: str) -> list[str]:
    """The cells qrouter found no LEF macro for (it drops such an instance and its pins), sorted, each once."""
    return sorted(set(_NO_MACRO.findall(text)))
