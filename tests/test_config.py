"""Config loading, catalog resolution and the command line's handling of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
from conftest import experiment_dict, make_experiment

from disagg.cluster.config import load_experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def _validate(tmp_path: Path, raw: dict, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", str(_write(tmp_path, raw))])
    err = capsys.readouterr().err.strip()
    return code, err


def test_quickstart_validates() -> None:
    assert main(["validate", str(ROOT / "experiments" / "quickstart.toml")]) == 0


def test_misspelt_field_exits_2_naming_it(tmp_path: Path, capsys) -> None:
    raw = experiment_dict()
    raw["workload"]["rate_per_sec"] = raw["workload"].pop("rate_per_s")
    code, err = _validate(tmp_path, raw, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "workload.rate_per_sec" in err and "not allowed" in err


def test_negative_rate_exits_2_with_value_and_bound(tmp_path: Path, capsys) -> None:
    code, err = _validate(tmp_path, experiment_dict(workload__rate_per_s=-3.0), capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "workload.rate_per_s" in err and "-3.0" in err and "greater than 0" in err


def test_unknown_hardware_exits_2_listing_known_names(tmp_path: Path, capsys) -> None:
    code, err = _validate(tmp_path, experiment_dict(decode__hardware="cs-3"), capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "decode.hardware" in err and "'cs-3'" in err and "did you mean 'cs3'" in err


def test_model_too_big_for_unit_exits_2(tmp_path: Path, capsys) -> None:
    code, err = _validate(tmp_path, experiment_dict(prefill__chips_per_unit=1), capsys)
    assert code == 2
    assert "prefill.chips_per_unit" in err and "exceed" in err


def test_unknown_policy_exits_2_listing_known(tmp_path: Path, capsys) -> None:
    raw = experiment_dict(policies__router="round_robbin")
    code, err = _validate(tmp_path, raw, capsys)
    assert code == 2
    assert "policies.router" in err and "did you mean 'round_robin'" in err


def test_unknown_policy_parameter_exits_2(tmp_path: Path, capsys) -> None:
    raw = experiment_dict(policies__prefill_batching={"name": "fcfs", "max_tokens": 5})
    code, err = _validate(tmp_path, raw, capsys)
    assert code == 2
    assert "max_tokens" in err and "max_batch_tokens" in err


def test_bad_toml_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[experiment\nname = 1")
    assert main(["validate", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "no such experiment file" in capsys.readouterr().err


def test_bad_run_writes_nothing(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, experiment_dict(workload__rate_per_s=0))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["exp.toml"]


def test_catalog_table_with_overrides() -> None:
    exp = make_experiment(model={"name": "llama-3.1-70b", "kv_bytes_per_element": 1})
    assert exp.model.kv_bytes_per_element == 1
    assert exp.model.layers == 80
    assert exp.model.sources["kv_bytes_per_element"] == "user override"


def test_inline_hardware_spec() -> None:
    chip = {"name": "mychip", "peak_flops_bf16": 1e15, "peak_flops_fp8": 2e15,
            "memory_bytes": 200e9, "memory_bandwidth_bytes_per_s": 5e12,
            "interconnect_bytes_per_s": 1e12, "host_nic_bytes_per_s": 50e9}
    exp = make_experiment(prefill__hardware=chip, prefill__chips_per_unit=1)
    assert exp.prefill.hardware.name == "mychip"


def test_overrides_apply_dotted_keys(tmp_path: Path) -> None:
    exp = load_experiment(_write(tmp_path, experiment_dict()),
                          {"experiment.seed": 99, "experiment.engine": "ray"})
    assert exp.experiment.seed == 99 and exp.experiment.engine == "ray"


def test_policy_shorthand_and_params() -> None:
    exp = make_experiment(policies__prefill_batching={"name": "fcfs", "max_batch_tokens": 4096})
    assert exp.policies.prefill_batching.params == {"max_batch_tokens": 4096}
    with pytest.raises(ConfigError):
        make_experiment(policies__router={"name": ""})


def test_catalog_command_prints_sources(capsys) -> None:
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    assert "trainium2" in out and "cs3" in out and "calibration" in out
