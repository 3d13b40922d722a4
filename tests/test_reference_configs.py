"""The literature's reference hardware and models (cluster/hardware/catalog_literature.py),
catalog bases with overrides, chips without FP8, the unfitted-efficiency warning, the
``--set`` / ``--rate`` flags, and the shipped experiments that use them (each validates and
runs briefly on the virtual engine; the autouse fixture checks every results folder's
invariants)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import tomli_w
from conftest import experiment_dict, make_experiment

from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.catalog import hardware, models
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.overrides import parse_sets
from disagg.experiments.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
NEW_MODELS = ("opt-13b", "opt-66b", "opt-175b", "llama-2-7b", "llama-2-13b", "llama-2-70b",
              "bloom-176b", "qwen3-235b-a22b", "llama-4-maverick")


@pytest.mark.parametrize("name", NEW_MODELS)
def test_every_new_model_has_a_context_and_sources(name: str) -> None:
    m = models()[name]
    assert m.max_context_tokens and "max_context_tokens" in m.sources
    assert any(s.startswith("[V]") for s in m.sources.values())


@pytest.mark.parametrize(("name", "per_token"), [
    ("opt-13b", 2 * 40 * 40 * 128 * 2),      # 819,200 B: MHA, 40 layers x 40 heads x 128
    ("llama-2-70b", 2 * 80 * 8 * 128 * 2),   # 327,680 B: GQA, 8 KV heads
    ("bloom-176b", 2 * 70 * 112 * 128 * 2),  # 4,014,080 B
    ("qwen3-235b-a22b", 2 * 94 * 4 * 128 * 2),
])
def test_kv_bytes_per_token_by_hand(name: str, per_token: int) -> None:
    assert kv_bytes(1, models()[name]) == per_token


def test_a100s_have_no_fp8_and_half_the_nvlink_one_way() -> None:
    for name, mem, bw in (("a100-80gb", 80e9, 2.039e12), ("a100-40gb", 40e9, 1.555e12)):
        hw = hardware()[name]
        assert hw.peak_flops_fp8 is None and hw.peak_flops_bf16 == 312e12
        assert (hw.memory_bytes, hw.memory_bandwidth_bytes_per_s) == (mem, bw)
        assert hw.intra_host_copy_bytes_per_s == 300e9 and hw.chips_per_host == 8


def test_model_base_with_overrides_keeps_sources() -> None:
    exp = make_experiment(model={"base": "llama-2-70b", "max_context_tokens": 8192})
    assert exp.model.name == "llama-2-70b" and exp.model.layers == 80
    assert exp.model.max_context_tokens == 8192
    assert exp.model.sources["max_context_tokens"] == "user override"
    renamed = make_experiment(model={"base": "opt-13b", "name": "my-opt", "kv_dtype": "fp8"})
    assert renamed.model.name == "my-opt" and renamed.model.kv_bytes_per_element == 1


def test_unknown_base_lists_the_catalog() -> None:
    with pytest.raises(ConfigError, match="unknown model 'llama-2-71b'.*did you mean"):
        make_experiment(model={"base": "llama-2-71b"})


def _file(tmp_path: Path, **overrides: object) -> str:
    path = tmp_path / "exp.toml"
    path.write_text(tomli_w.dumps(experiment_dict(**overrides)))
    return str(path)


def test_fp8_weights_on_a_chip_without_fp8_exit_2(tmp_path: Path, capsys) -> None:
    exp = _file(tmp_path, model={"base": "llama-2-70b", "weight_dtype": "fp8"},
                prefill__hardware="a100-80gb")
    assert main(["validate", exp]) == 2
    err = capsys.readouterr().err
    assert "model.weight_dtype" in err and "a100-80gb" in err and err.count("\n") == 1


def test_inline_chip_without_fp8_figure_validates(tmp_path: Path, capsys) -> None:
    chip = {"name": "mychip", "peak_flops_bf16": 1e15, "memory_bytes": 200e9,
            "memory_bandwidth_bytes_per_s": 5e12, "interconnect_bytes_per_s": 1e12,
            "host_nic_bytes_per_s": 50e9}
    assert main(["validate", _file(tmp_path, prefill__hardware=chip)]) == 0
    out = capsys.readouterr().out
    # efficiencies not given: the documented defaults, named in a warning
    assert "hardware 'mychip' has no fitted efficiency" in out
    assert "compute_efficiency = 0.5" in out and "memory_efficiency = 0.67" in out


def test_fitted_chips_raise_no_warning(tmp_path: Path, capsys) -> None:
    assert main(["validate", _file(tmp_path, decode__hardware="h100",
                                   decode__chips_per_unit=8)]) == 0
    out = capsys.readouterr().out
    assert "'h100' has no fitted" not in out and "'trainium2' has no fitted" not in out


def test_parse_sets_reads_toml_values() -> None:
    assert parse_sets(["a.b=4", "c=0.5", "d=true", "e=llama-2-70b", 'f="x"',
                       "g={ kind = \"fixed\", value = 8 }"]) == {
        "a.b": 4, "c": 0.5, "d": True, "e": "llama-2-70b", "f": "x",
        "g": {"kind": "fixed", "value": 8}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sets(["novalue"])


def test_set_and_rate_on_run(tmp_path: Path) -> None:
    out = tmp_path / "o"
    exp = _file(tmp_path)
    assert main(["run", exp, "--no-live", "--out", str(out), "--rate", "1.5",
                 "--set", "experiment.duration_s=2", "--set", "model.max_context_tokens=8192"]) == 0
    cfg = (out / "config.toml").read_text()
    assert "rate_per_s = 1.5" in cfg and "max_context_tokens = 8192" in cfg
    assert json.loads((out / "summary.json").read_text())["duration_s"] > 0


@pytest.mark.parametrize(("argv", "needle"), [
    (["--set", "workload.rate_per_s=-1"], "workload.rate_per_s"),
    (["--set", "prefill.nope=1"], "prefill.nope"),
    (["--set", "experiment.seed.x=1"], "experiment.seed"),
])
def test_bad_set_exits_2_naming_the_key(tmp_path: Path, capsys, argv: list[str],
                                        needle: str) -> None:
    assert main(["validate", _file(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


def test_rate_on_a_closed_loop_exits_2(tmp_path: Path, capsys) -> None:
    exp = str(ROOT / "experiments" / "closed_loop_chat.toml")
    assert main(["run", exp, "--rate", "3", "--engine", "virtual", "--no-live",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--rate" in err and "closed_loop" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


SHIPPED = ("opt13b_disagg_a100_one_host", "llama2_70b_slowdown_a100", "llama2_70b_slowdown_h100")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_literature_experiments_validate_and_run(tmp_path: Path, name: str) -> None:
    path = ROOT / "experiments" / f"{name}.toml"
    assert path.read_text().startswith("# Question:")
    assert main(["validate", str(path)]) == 0
    out = tmp_path / name
    assert main(["run", str(path), "--duration", "3", "--no-live", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["submitted"] == summary["completed"] + summary["rejected"] \
        + summary["failed"] + summary["cancelled"] > 0
    if "slowdown" in name:
        assert summary["slo_definition"] == "percentiles"
        assert {r["target"] for r in summary["slo_targets"]} == {
            f"{m}_p{p}_slowdown" for m in ("ttft", "tpot", "e2e") for p in (50, 90, 99)}
    else:  # one host: every KV transfer stays inside it
        rows = pq.read_table(out / "transfers.parquet").to_pylist()
        assert rows and {(r["src_host"], r["dst_host"]) for r in rows} == {
            ("prefill-host-0", "prefill-host-0")}


def test_rate_time_scales_a_trace_replacing_its_speedup() -> None:
    # azure_conv.toml replays at speedup = 1.0; --rate 3 rescales it to a mean of 3 req/s
    from argparse import Namespace

    from disagg.experiments.cli.common import load
    args = Namespace(experiment=str(ROOT / "experiments" / "azure_conv.toml"), rate=3.0,
                     set=["experiment.engine=virtual"], local=True)
    exp = load(args, check=False)
    assert exp.workload.rate_per_s == 3.0 and exp.workload.speedup is None


def test_hardware_base_with_overrides_silences_the_warning(tmp_path: Path, capsys) -> None:
    hw = {"base": "a100-80gb", "compute_efficiency": 0.45, "memory_efficiency": 0.8}
    exp = _file(tmp_path, model="llama-2-70b", prefill__hardware=hw, prefill__chips_per_unit=8,
                decode__hardware="a100-80gb", decode__chips_per_unit=8,
                workload__prompt_tokens={"kind": "fixed", "value": 1000},
                workload__output_tokens={"kind": "fixed", "value": 100})
    assert main(["validate", exp]) == 0
    out = capsys.readouterr().out
    assert out.count("'a100-80gb' has no fitted efficiency") == 1  # the decode pool's, not both
    assert "compute_efficiency = 0.5, memory_efficiency = 0.67" in out


def test_slo_class_the_workload_lacks_exits_2(tmp_path: Path, capsys) -> None:
    exp = _file(tmp_path, slo={"ttft_s": 1.0, "tpot_s": 0.02,
                               "classes": {"chat": {"percentiles": {"ttft_p90_s": 0.4}}}})
    assert main(["validate", exp]) == 2
    err = capsys.readouterr().err
    assert "slo.classes.chat" in err and "allowed: default" in err


def test_capacity_targets_every_percentile_by_default(capsys) -> None:
    # slowdown SLOs: attainment 1.0 means every target met, so capacity searches for 1.0
    exp = str(ROOT / "experiments" / "llama2_70b_slowdown_h100.toml")
    assert main(["capacity", exp, "--duration", "2", "--lo", "0.5", "--hi", "1",
                 "--tol", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "target 100 %" in out and "capacity:" in out
