"""FlowConfig loads strictly: unknown keys name the nearest valid key, values are checked against the registry's
ranges, the placer section is typed, old run.json files load through the migration map."""
from __future__ import annotations

import pytest

import engine.config as config_mod
from engine.config import FlowConfig, apply_settings
from engine.errors import EngineError
from engine.place.config import PlaceConfig


@pytest.mark.parametrize("data,message", [
    ({"floorplan": {"utilisation": 0.3}}, "unknown key floorplan.utilisation; did you mean floorplan.utilization?"),
    ({"place": {"target_densty": 0.8}}, "unknown key place.target_densty; did you mean place.target_density?"),
    ({"clockns": 5}, "unknown key clockns; did you mean clock_ns?"),
    ({"utilization": 0.5}, "unknown key utilization; did you mean floorplan.utilization?"),
    ({"route": {"layer": 5}}, "did you mean route.layers?"),
    ({"nonsense": {}}, "unknown key nonsense"),
])
def test_unknown_keys_name_the_nearest(data, message):
    with pytest.raises(EngineError) as exc:
        FlowConfig.from_dict(data)
    assert message in exc.value.message


@pytest.mark.parametrize("data,message", [
    ({"place": {"target_density": 2}}, "place.target_density = 2 is out of range 0.3-1"),
    ({"floorplan": {"utilization": 0}}, "floorplan.utilization = 0 is out of range 0.1-0.95"),
    ({"route": {"layers": 4.5}}, "not a whole number"),
    ({"synth": {"abc_script": "turbo"}}, "not one of default, delay, fast, area"),
    ({"clock_ns": -1}, "clock_ns = -1 is out of range"),
    ({"floorplan": 0.5}, "must be a table of settings"),
    ({"design_files": "a.v"}, "must be a list of file paths"),
])
def test_values_are_checked_against_the_registry(data, message):
    with pytest.raises(EngineError, match=message.replace(".", r"\.")):
        FlowConfig.from_dict(data)


def test_values_are_coerced_and_round_trip():
    cfg = FlowConfig.from_dict({"clock_ns": "5", "route": {"layers": 5.0}, "place": {"detailed": "off"}})
    assert cfg.clock_ns == 5.0 and cfg.route.layers == 5 and isinstance(cfg.route.layers, int)
    assert cfg.place.detailed is False
    assert FlowConfig.from_dict(cfg.to_dict()) == cfg
    assert FlowConfig.from_dict({}) == FlowConfig()


def test_place_is_typed_and_old_dict_style_still_works():
    cfg = FlowConfig()
    assert isinstance(cfg.place, PlaceConfig) and cfg.place.target_density == PlaceConfig().target_density
    cfg.place = {"frame_every": 5}  # a dict is loaded into PlaceConfig (strictly), the rest at defaults
    assert isinstance(cfg.place, PlaceConfig) and cfg.place.frame_every == 5 and cfg.place.seed == 1
    cfg.place["max_iterations"] = 200  # mapping access of the old dict of overrides
    assert cfg.place.max_iterations == 200 and dict(cfg.place)["max_iterations"] == 200
    assert cfg.place.overrides() == {"frame_every": 5, "max_iterations": 200}
    with pytest.raises(EngineError, match="did you mean place.max_iterations"):
        cfg.place["max_iteration"] = 3
    assert cfg.section("place")["max_iterations"] == 200  # the step's reuse key sees the whole section


def test_old_run_json_loads_through_the_migration_map(monkeypatch):
    # A run.json written before place was typed: a partial dict of placer overrides.
    old = {"design_files": ["/x/c.v"], "top": "c", "clock_ns": 10.0, "place": {"target_density": 0.8},
           "floorplan": {"utilization": 0.5}}
    cfg = FlowConfig.from_dict(old)
    assert cfg.place.target_density == 0.8 and cfg.place.max_iterations == PlaceConfig().max_iterations
    # A renamed field and a dropped one, as the map would list them.
    monkeypatch.setattr(config_mod, "RENAMED_KEYS", {"floorplan.util": "floorplan.utilization",
                                                     "place.gamma": "place.gamma_base"})
    monkeypatch.setattr(config_mod, "DROPPED_KEYS", frozenset({"route.old_knob"}))
    cfg = FlowConfig.from_dict({"floorplan": {"util": 0.45}, "place": {"gamma": 2.0}, "route": {"old_knob": 1}})
    assert cfg.floorplan.utilization == 0.45 and cfg.place.gamma_base == 2.0
    # the new key wins over the old one when both are there
    cfg = FlowConfig.from_dict({"floorplan": {"util": 0.45, "utilization": 0.7}})
    assert cfg.floorplan.utilization == 0.7


def test_apply_settings_parses_dotted_assignments():
    data = apply_settings(FlowConfig().to_dict(), ["place.gamma_base=2", "clock_ns=5", "route.enabled=false"])
    cfg = FlowConfig.from_dict(data)
    assert (cfg.place.gamma_base, cfg.clock_ns, cfg.route.enabled) == (2.0, 5.0, False)
    with pytest.raises(EngineError, match="write section.key=value"):
        apply_settings({}, ["place.gamma_base"])
    with pytest.raises(EngineError, match="did you mean place.gamma_base"):
        apply_settings({}, ["place.gama_base=2"])


def test_cli_refuses_out_of_range_flags_with_the_range(tmp_path, capsys):
    from engine.cli import main

    runs = str(tmp_path / "runs")
    for argv, message in ((["--density", "2"], "place.target_density = 2 is out of range 0.3-1"),
                          (["--utilization", "0"], "floorplan.utilization = 0 is out of range 0.1-0.95"),
                          (["--set", "floorplan.utilisation=0.3"], "did you mean floorplan.utilization?"),
                          (["--set", "place.gamma_base=high"], "place.gamma_base = 'high' is not a number")):
        assert main(["--runs-dir", runs, "flow", "run", "counter", *argv]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("2*"))  # no run was started


def test_cli_set_reaches_the_run(tmp_path, capsys):
    from engine.cli import main
    from engine.runs import RunStore

    runs = tmp_path / "runs"
    assert main(["--runs-dir", str(runs), "flow", "run", "counter", "--until", "floorplan",
                 "--set", "floorplan.aspect_ratio=2", "--set", "floorplan.core_margin_um=20"]) == 0
    store = RunStore(runs)
    run = store.get(store.list(limit=1)[0]["id"])
    assert run.config["floorplan"]["aspect_ratio"] == 2.0 and run.config["floorplan"]["core_margin_um"] == 20.0
    fp = run.metrics()["floorplan"]
    assert fp["floorplan__core__height_um"] > 1.5 * fp["floorplan__core__width_um"]
