"""Bad input everywhere (issue 12 item 5): each case exits 2 with one line naming the thing and
what is allowed, before anything runs, and leaves the folder as it was."""

from __future__ import annotations

import time
from typing import Any
from pathlib import Path

import pytest
import tomli_w
from conftest import experiment_dict, make_experiment

from disagg.cluster.errors import ConfigError
from disagg.cluster.facts import check_size
from disagg.cluster.sizing import BYTES_PER_REQUEST, BYTES_PER_TIMESERIES_ROW
from disagg.experiments.checks import check_experiment
from disagg.experiments.cli.main import main
from disagg.experiments.run import run_experiment


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _refused(tmp_path: Path, capsys, argv: list[str], *needles: str) -> str:
    before = _snapshot(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("disagg: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    assert _snapshot(tmp_path) == before
    return err


def _exp_file(tmp_path: Path, **overrides: object) -> str:
    path = tmp_path / "exp.toml"
    path.write_text(tomli_w.dumps(experiment_dict(**overrides)))
    return str(path)


@pytest.mark.parametrize("content, needle", [
    (b"\xff\xfe\x00\x01binary", "not UTF-8 text"),
    ('[experiment]\nname = "caf\xe9"\n'.encode("latin-1"), "not UTF-8 text"),
])
def test_unreadable_experiment_files(tmp_path: Path, capsys, content: bytes, needle: str) -> None:
    (tmp_path / "bad.toml").write_bytes(content)
    _refused(tmp_path, capsys, ["validate", str(tmp_path / "bad.toml")], needle, "bad.toml")


def test_a_folder_as_experiment_file(tmp_path: Path, capsys) -> None:
    _refused(tmp_path, capsys, ["run", str(tmp_path), "--no-live"], "is a folder")


@pytest.mark.parametrize("address, needle", [
    ("127.0.0.1:1", "no Ray cluster answers there"), ("not a host", "is not a Ray address"),
    ("host:99999", "is not a Ray address"),
])
def test_dead_or_malformed_addresses_fail_fast_with_a_hint(tmp_path: Path, capsys, address: str,
                                                           needle: str) -> None:
    started = time.monotonic()
    exp = _exp_file(tmp_path, experiment__engine="ray")
    err = _refused(tmp_path, capsys, ["run", exp, "--no-live", "--out", str(tmp_path / "o"),
                                      "--address", address], "--address", needle)
    assert time.monotonic() - started < 15.0
    assert "hint" in err or "allowed" in err


def test_a_run_too_big_for_the_machine_is_refused_with_its_estimate(tmp_path: Path,
                                                                    capsys) -> None:
    exp = _exp_file(tmp_path, workload__rate_per_s=1e6, experiment__duration_s=1e6)
    _refused(tmp_path, capsys, ["run", exp, "--no-live", "--out", str(tmp_path / "o")],
             "run size: estimated", "1e+12 requests")


def test_the_size_estimate_by_hand() -> None:
    exp = make_experiment()  # 4 req/s for 5 s; 2 prefill + 1 decode units; 2 hosts x 2 NIC links
    requests, rows = 4.0 * 5.0, (5.0 / 0.5) * (2 + 1 + 4)
    expected = requests * BYTES_PER_REQUEST + rows * BYTES_PER_TIMESERIES_ROW
    check_size(exp, memory_bytes=expected / 0.8 * 1.001)  # just fits
    with pytest.raises(ConfigError, match="20 requests"):
        check_size(exp, memory_bytes=expected / 0.8 * 0.999)


def test_a_length_distribution_clipping_half_its_values_is_refused(tmp_path: Path,
                                                                  capsys) -> None:
    exp = _exp_file(tmp_path, workload__prompt_tokens={"kind": "lognormal", "median": 4000,
                                                       "sigma": 0.5, "max": 1000})
    _refused(tmp_path, capsys, ["validate", exp], "workload.prompt_tokens", "median 4000")


def test_policy_parameters_are_checked_by_type(tmp_path: Path, capsys) -> None:
    exp = _exp_file(tmp_path, policies__router={"name": "slo_aware", "admission_control": "yes"})
    _refused(tmp_path, capsys, ["validate", exp], "policies.router", "'admission_control'",
             "expected bool")


def test_a_corrupt_comparison_run_is_bad_input(tmp_path: Path, capsys) -> None:
    run = tmp_path / "cmp" / "runs" / "rr" / "rate-1" / "repeat-0"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{not json")
    _refused(tmp_path, capsys, ["report", str(tmp_path / "cmp")], "unreadable", "repeat-0")


def test_a_binary_trace_is_bad_input(tmp_path: Path, capsys) -> None:
    (tmp_path / "t.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    exp = _exp_file(tmp_path, workload={"kind": "trace", "path": str(tmp_path / "t.csv"),
                                        "format": "azure"})
    _refused(tmp_path, capsys, ["run", exp, "--no-live", "--out", str(tmp_path / "o")],
             "t.csv", "not UTF-8 text")


@pytest.mark.parametrize("mode", ["reject", "truncate"])
def test_prompts_beyond_the_models_context(mode: str) -> None:
    # a distribution is checked per request by the router (fixed lengths are refused at
    # validation: test_fixed_lengths_beyond_the_context_are_refused)
    limit = 131_072  # Llama 3.1 70B: 128K context (model card)
    exp = make_experiment(experiment__over_context=mode, experiment__duration_s=2.0,
                          workload__prompt_tokens={"kind": "uniform", "low": 200_000,
                                                   "high": 200_000},
                          workload__output_tokens={"kind": "fixed", "value": 100})
    rows = run_experiment(exp).tables["requests"].to_pylist()
    assert rows
    if mode == "reject":
        assert {(r["status"], r["reason"]) for r in rows} == {("rejected", "exceeds_context")}
    else:
        assert {r["prompt_tokens"] for r in rows} == {limit - 100}
        assert {r["status"] for r in rows} <= {"completed", "failed"}


@pytest.mark.parametrize("model", ["llama-3.1-70b", "inline"])
def test_fixed_lengths_beyond_the_context_are_refused(model: str) -> None:
    # the same rule for a catalog model and an inline one (here: OPT-13B's shape, 2,048 tokens)
    spec: Any = model if model != "inline" else {
        "name": "my-opt", "layers": 40, "hidden_size": 5120, "q_heads": 40, "kv_heads": 40,
        "head_dim": 128, "ffn_size": 20480, "vocab": 50272, "total_params": 12.85e9,
        "active_params": 12.85e9, "max_context_tokens": 2048}
    prompt = 131_000 if model != "inline" else 2_000
    exp = make_experiment(model=spec, workload__prompt_tokens={"kind": "fixed", "value": prompt},
                          workload__output_tokens={"kind": "fixed", "value": 100})
    with pytest.raises(ConfigError, match="workload.prompt_tokens.*exceeds model"):
        check_experiment(exp)
    # truncate: the prompt is cut per request, so the same lengths validate
    check_experiment(exp.model_copy(update={"experiment": exp.experiment.model_copy(
        update={"over_context": "truncate"})}))
