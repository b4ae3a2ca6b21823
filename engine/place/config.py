"""PlaceConfig: every knob of the analytical placer, with defaults that work."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class PlaceConfig:
    """Configuration of `engine.place.place` (global, legal and detailed placement)."""

    # --- global placement -------------------------------------------------------------
    target_density: float = 1.0
    """Bin density the spreading aims at; fillers fill the core up to it. 1.0 (as DREAMPlace) gave 2% lower
    legal HPWL than 0.9 on generated netlists; lower it to leave whitespace for routing in congested designs."""
    target_overflow: float = 0.10
    """Global placement stops once the density overflow drops below this (ePlace/DREAMPlace use 0.07-0.10)."""
    max_iterations: int = 1000
    """Cap on Nesterov iterations; reaching it is logged, not an error."""
    min_iterations: int = 20
    """Never stop before this many iterations (the first ones have meaningless overflow)."""
    num_bins: int = 0
    """Bins per side of the density grid (power of two); 0 picks one from the cell count."""
    gamma_base: float = 4.0
    """WA smoothing in bin widths at overflow 0.1 is gamma_base/10; annealed with overflow as in DREAMPlace."""
    density_weight_init: float = 10.0
    """Initial density weight x |grad D|_1 / |grad WL|_1 (DREAMPlace starts at 8e-5; with our preconditioner a
    strong start converges 2-3x sooner at the same HPWL on generated netlists, see bench/bench_place.py)."""
    density_weight_growth: float = 1.05
    """Upper bound of the per-iteration growth of the density weight (~1.05x, lower when HPWL jumps)."""
    density_weight_ref_delta: float = 0.05
    """HPWL rise per iteration (fraction of HPWL) at which the density weight stops growing."""
    max_net_degree: int = 1000
    """Nets with more pins than this are ignored by the smooth wirelength (clock-like nets); HPWL counts them."""
    init_noise: float = 0.001
    """Initial placement: all movable cells at the core centre plus this much noise (fraction of core size)."""
    stretch_cells: bool = True
    """Stretch cells smaller than a bin to sqrt(2) bins (charge kept) so the density is smooth."""
    use_fillers: bool = True
    """Add filler cells (density only) so that the whitespace spreads evenly at the target density."""
    precondition: bool = True
    """Divide gradients by (pin count + density weight x charge), the ePlace preconditioner."""
    max_backtracks: int = 10
    """Maximum step-size backtracks per Nesterov iteration."""
    seed: int = 1
    """Random seed (initial noise, fillers)."""

    # --- routability and timing --------------------------------------------------------
    routability: bool = False
    """Routability mode (RePlAce/DREAMPlace style): once the overflow falls below routability_trigger_overflow,
    cells in bins whose RUDY exceeds routability_rudy_threshold x the mean are inflated in the density term (so
    the spreading leaves them whitespace) and global placement continues; legalisation uses the real sizes."""
    routability_max_rounds: int = 3
    """Inflation rounds at most (each waits until the overflow is below the trigger again)."""
    routability_trigger_overflow: float = 0.2
    """Overflow below which an inflation round runs (the cells must be spread enough for RUDY to mean much)."""
    routability_rudy_threshold: float = 1.5
    """A bin is congested when its RUDY exceeds this multiple of the mean RUDY over the core (dimensionless, so
    the same value works on any technology)."""
    inflation_max: float = 2.0
    """Cap on a cell's total area inflation (product over rounds); the total added area is also bounded by the
    whitespace (target density x free area - cell area)."""
    routability_auto_congestion: float = 0.0
    """Flow only: when > 0 and routability is off, re-place with routability on if the first placement's top-10%
    RUDY demand / routing capacity (the route step's congestion measure) exceeds this; 0 = never."""
    timing_driven: bool = False
    """Timing-driven mode: net weights 1 + (timing_weight_max - 1) x criticality, from timing_weights_file when
    given (slacks of an earlier STA run), else from a static proxy (longest paths in logic levels plus placed
    wire length), recomputed as the overflow falls through 0.5 and 0.25."""
    timing_weight_max: float = 4.0
    """Weight of the most critical net (the others scale down with criticality to 1)."""
    timing_weights_file: str = ""
    """A 05-timing/paths.json of an earlier run: its worst paths' nets get the weights (empty = static proxy)."""

    # --- numerics ---------------------------------------------------------------------
    device: str = "cpu"
    """torch device: 'cpu', 'cuda', 'cuda:1', ... (the same code path runs on all)."""
    dtype: str = "float32"
    """Floating point type of the placer tensors: 'float32' (default, fast) or 'float64'."""
    num_threads: int = 0
    """torch.set_num_threads for the run; 0 = one thread on CPU (robust when other jobs share the cores)."""

    # --- frames -----------------------------------------------------------------------
    frame_every: int = 4
    """Emit a frame every k global-placement iterations (0 = no frames). 4 gives the page about 4 frames a second
    on a 10k-cell design on one core (bench/results/player_fps_10000_every4.json), for 2.5-6.5% of global
    placement's time; the benchmarks and the optimizer turn frames off."""
    frame_max_cells: int = 20000
    """Frames carry at most this many cell positions (a fixed random subsample above it)."""
    frame_map_bins: int = 64
    """Side of the density and RUDY maps stored in frames (downsampled from the placer grid)."""

    # --- legalization and detailed placement ------------------------------------------
    legalize: bool = True
    """Run Abacus legalization (row trials at each cell's collapsed x) onto the rows and sites."""
    detailed: bool = True
    """Run detailed placement (independent-set matching, global swap, 3-cell windows, row shifting, vertical
    moves between adjacent rows with re-packing) after legalization."""
    detailed_passes: int = 2
    """Passes of the detailed-placement moves (each pass stops the run early when it gains < 0.1%)."""
    detailed_time_limit_s: float = 600.0
    """Safety stop for detailed placement (it keeps what it improved). Its work is bounded by counts, not by
    the clock, so results are reproducible on a busy machine; only a run that reaches this limit is not."""
    row_search: int = 6
    """Legalization looks this many rows above and below a cell's row first (then widens)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> PlaceConfig:
        """Build from a dict, strictly: an unknown key or a value out of its range is an EngineError naming the
        nearest valid key or the range (engine.config.load_section)."""
        from engine.config import load_section

        return load_section(cls, data or {}, "place")

    # Mapping access (``cfg.place["max_iterations"] = 200``, ``dict(cfg.place)``): FlowConfig.place was a dict of
    # overrides before it was typed, and code written against that keeps working. Unknown names are an error.
    def _field(self, name: str) -> str:
        if name not in self.__dataclass_fields__:
            from engine.config import unknown_key_error

            raise unknown_key_error(f"place.{name}", [f"place.{f.name}" for f in fields(self)])
        return name

    def __getitem__(self, name: str):
        return getattr(self, self._field(name))

    def __setitem__(self, name: str, value) -> None:
        setattr(self, self._field(name), value)

    def get(self, name: str, default=None):
        return getattr(self, name) if name in self.__dataclass_fields__ else default

    def keys(self):
        return [f.name for f in fields(self)]

    def items(self):
        return [(k, getattr(self, k)) for k in self.keys()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, name) -> bool:
        return name in self.__dataclass_fields__

    def overrides(self) -> dict:
        """The fields that differ from the defaults (what a person changed), for sentences and compact logs."""
        base = type(self)()
        return {k: v for k, v in self.items() if getattr(base, k) != v}
