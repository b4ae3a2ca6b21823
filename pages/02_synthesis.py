"""Chapter 2 · Synthesis: Yosys turns the RTL into a netlist of the library's standard cells."""
from __future__ import annotations

import streamlit as st

from cockpit import data, figures, runpicker, story
from cockpit.jobs_panel import live
from cockpit.widgets import metric_cards, metric_table, needs_run, problem_boxes, run_context, step_not_reached


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


run = runpicker.current_run()
m = run.metrics().get("synth", {}) if run else {}
happened = None
if m:
    happened = (f"Yosys mapped **{m.get('design__top', 'the design')}** onto **{m.get('design__instance__count', 0):,} "
                f"cells** ({m.get('design__instance__count__sequential', 0):,} flip-flops) covering "
                f"**{m.get('design__instance__area', 0):,.0f} µm²**, with "
                f"{_n(m.get('synth__warning__count', 0), 'Yosys warning')}.")
    findings = m.get("synth__design_warnings") or []
    if findings:
        happened += f" **{_n(len(findings), 'finding')} below** change what the netlist means: read them first."
story.opener(
    "2 · Synthesis",
    "Yosys reads the Verilog, works out the logic, and maps it onto the standard cells of the osu018 library "
    "(NAND, NOR, flip-flops, ...). The result is a netlist: cells and the nets between them.",
    happened,
    "the bar chart shows which cells the logic became; many flip-flops mean much state, many XOR/AOI cells "
    "mean arithmetic.",
)
if not needs_run(run):
    def body(r):
        mm = r.metrics().get("synth", {})
        if not mm:
            step_not_reached(r, "synth", "netlist")
            return
        for text in mm.get("synth__design_warnings") or []:  # what Yosys found that changes the meaning
            st.warning(text, icon=":material/warning:")
        metric_cards(mm, ["design__instance__count", "design__instance__count__sequential", "design__instance__area",
                          "design__net__count", "design__io__count"], run_context(r))
        types = mm.get("synth__cell_types") or {}
        left, right = st.columns([3, 2], gap="large")
        with left:
            if types:
                items = sorted(types.items(), key=lambda kv: -kv[1])[:20]
                st.plotly_chart(figures.bar_figure([k for k, _ in items], [v for _, v in items],
                                                   title="Cells by type", xlabel="instances",
                                                   height=max(300, 26 * len(items) + 80)), width="stretch")
        with right:
            netlist = data.artefact(r, "synth", "netlist_v", "netlist.v")
            if netlist:
                st.download_button("Download the netlist (Verilog)", netlist.read_bytes, file_name="netlist.v",
                                   icon="⬇️")
            log = data.artefact(r, "synth", "log", "yosys.log")
            if log:
                with st.expander("Yosys log (last lines)"):
                    st.code(data.text_tail(log, 40), language=None)
        problem_boxes(r, "synth")
        with st.expander("All synthesis numbers, with what they mean"):
            metric_table(mm, run_context(r), hide=("synth__cell_types", "synth__design_warnings"))

    live(run, body, key="synth")
