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
from disagg.cluster.sizing import (
    BYTES_PER_OPEN_REQUEST,
    BYTES_PER_REQUEST,
    BYTES_PER_TIMESERIES_ROW,
)
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


# -- the reliability sweep's bad inputs (issues 29 and 30), each one line and exit 2 ----------
BIG = 99_999_999_999_999_999_999_999  # beyond 64 bits
SPACE = {"family": [{"name": "a", "prefill": {"hardware": ["trainium2"], "chips_per_unit": [4],
                                              "units": [1]},
                     "decode": {"hardware": ["cs3"], "chips_per_unit": [4], "units": [1]}}]}


def _trace_exp(tmp_path: Path, name: str, text: str, fmt: str) -> str:
    (tmp_path / name).write_text(text)
    return _exp_file(tmp_path, workload={"kind": "trace", "path": str(tmp_path / name),
                                         "format": fmt})


@pytest.mark.parametrize("name, text, fmt, needles", [
    ("t.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.5,374,44\n"
              f"2023-11-16 18:15:47.0,{BIG},44\n", "azure",
     ("t.csv, line 3", "'ContextTokens'", str(BIG), "beyond 64 bits")),
    ("t.jsonl", f'{{"timestamp": 1, "input_length": 5, "output_length": {BIG}}}\n', "mooncake",
     ("t.jsonl, line 1", "'output_length'", "beyond 64 bits")),
    ("t.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:47.5,374,44\n"
              "2023-11-16 18:15:47.0,10,4\n", "azure",
     ("t.csv, line 3", "0.5 s before the previous row's", "allowed: rows in time order")),
])
def test_bad_traces_are_refused(tmp_path: Path, capsys, name: str, text: str, fmt: str,
                                needles: tuple[str, ...]) -> None:
    exp = _trace_exp(tmp_path, name, text, fmt)
    _refused(tmp_path, capsys, ["run", exp, "--no-live", "--out", str(tmp_path / "o")], *needles)


LOSS = {"kind": "unit_loss", "unit": "decode-0"}


@pytest.mark.parametrize("overrides, needles", [
    ({"faults": [{"kind": "kv_drop", "requests": [-1]}]},
     ("faults.0", "request id -1 is negative", "allowed: request ids >= 0")),
    ({"faults": [{"kind": "kv_corrupt", "requests": [2, -5]}]}, ("faults.0", "request id -5")),
    ({"faults": [{**LOSS, "at_s": 400.0}]},  # 5 s of arrivals + 300 s of drain
     ("faults.0.at_s", "400", "after the run has ended", "allowed: <= 305")),
    ({"faults": [{"kind": "straggler", "unit": "prefill-0", "factor": 2, "from_s": 1e4}]},
     ("faults.0.from_s", "after the run has ended")),
    ({"faults": [{**LOSS, "at_s": 1.0}, {**LOSS, "at_s": 2.0}]},
     ("faults.1.at_s", "decode-0", "faults.0 already lost from 1 s for good")),
    ({"faults": [{**LOSS, "at_s": 1.0, "restart_after_s": 2.0},
                 {"kind": "host_loss", "host": "decode-host-0", "at_s": 2.5}]},
     ("faults.1.at_s", "until 3 s", "allowed: a loss after it is back")),
    ({"slo__ttft_s": float("inf")}, ("slo.ttft_s", "inf", "must be a finite number")),
    ({"workload__rate_per_s": float("nan")}, ("workload.rate_per_s", "must be a finite number")),
    ({"experiment__duration_s": float("nan")}, ("experiment.duration_s", "finite number")),
    ({"experiment__dilation": float("nan")}, ("experiment.dilation", "must be a finite number")),
    ({"policies__router": "os.abort"},
     ("policies.router", "'os.abort' is a function, not a policy class",
      "choose_decode, choose_prefill")),
    ({"policies__decode_admission": "collections.OrderedDict"},
     ("policies.decode_admission", "without method 'admit'")),
])
def test_bad_experiments_are_refused(tmp_path: Path, capsys, overrides: dict[str, object],
                                     needles: tuple[str, ...]) -> None:
    exp = tmp_path / "exp.toml"
    exp.write_text(tomli_w.dumps(experiment_dict(**overrides)))  # type: ignore[arg-type]
    _refused(tmp_path, capsys, ["validate", str(exp)], *needles)


def test_a_faulted_unit_may_be_lost_again_once_it_is_back() -> None:
    make_experiment(faults=[{**LOSS, "at_s": 1.0, "restart_after_s": 1.0},
                            {**LOSS, "at_s": 2.0}])  # back at 2.0: lost again at 2.0 is fine


@pytest.mark.parametrize("argv, needles", [
    (["compare", "{exp}", "--policies", "sys.exit", "--out", "{o}"],
     ("--policies", "'sys.exit' is a function, not a policy class")),
    (["compare", "{exp}", "--policies", "", "--out", "{o}"], ("--policies", "value '' is empty")),
    (["capacity", "{exp}", "--target", "2"], ("--target", "value 2", "(0, 1]")),
    (["capacity", "{exp}", "--tol", "0"], ("--lo/--hi/--tol", "tol > 0")),
    (["capacity", "{exp}", "--lo", "nan"], ("--lo/--hi/--tol", "finite numbers")),
    (["run", "{exp}", "--no-live", "--dilation", "nan", "--out", "{o}"],
     ("experiment.dilation", "must be a finite number")),
])
def test_bad_options_are_refused(tmp_path: Path, capsys, argv: list[str],
                                 needles: tuple[str, ...]) -> None:
    exp = _exp_file(tmp_path)
    _refused(tmp_path, capsys, [a.replace("{exp}", exp).replace("{o}", str(tmp_path / "o"))
                                for a in argv], *needles)


@pytest.mark.parametrize("change, needles", [
    ({"policies": {"router": ["round_robinx"]}},
     ("policies.router", "unknown router policy 'round_robinx'", "did you mean 'round_robin'")),
    ({"policies": {"router": ["sys.exit"]}}, ("policies.router", "is a function")),
    ({"family": SPACE["family"] * 2}, ("family.1.name", "'a'", "distinct name")),
    ({"family": [{**SPACE["family"][0], "decode": {"hardware": ["cs9"], "chips_per_unit": [4],
                                                   "units": [1]}}]},
     ("family.0.decode.hardware", "'cs9'", "allowed: a100-40gb, a100-80gb, b200, cs3")),
    ({"family": [{**SPACE["family"][0], "host_nic_gbps": [-5.0]}]},
     ("family.0.host_nic_gbps.0", "-5.0", "greater than 0")),
    ({"hardware": {"cs9": {"power_w": 5.0}}}, ("hardware.cs9", "not catalog hardware")),
])
def test_bad_plan_spaces_are_refused(tmp_path: Path, capsys, change: dict[str, object],
                                     needles: tuple[str, ...]) -> None:
    (tmp_path / "space.toml").write_text(tomli_w.dumps({**SPACE, **change}))
    err = _refused(tmp_path, capsys, ["plan", _exp_file(tmp_path), "--search",
                                      str(tmp_path / "space.toml"), "--local", "--out",
                                      str(tmp_path / "p")], *needles)
    assert "Input should" not in err or "greater than" in err  # one line, not pydantic's three


def test_plan_refuses_an_existing_empty_user_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "space.toml").write_text(tomli_w.dumps(SPACE))
    (tmp_path / "mine").mkdir()
    _refused(tmp_path, capsys, ["plan", _exp_file(tmp_path), "--search",
                                str(tmp_path / "space.toml"), "--local", "--out",
                                str(tmp_path / "mine")], "--out", "not written by disagg plan")
    assert list((tmp_path / "mine").iterdir()) == []


def test_the_size_estimate_counts_closed_loop_users_by_hand() -> None:
    users = 1_000_000
    exp = make_experiment(workload={"kind": "closed_loop", "users": users, "think_time_s": 1.0})
    rows = (5.0 / 0.5) * (2 + 1 + 4)  # 2 prefill + 1 decode units, 4 NIC links
    # each user has one request in flight from the start: counted as a request and as open
    expected = users * (BYTES_PER_REQUEST + BYTES_PER_OPEN_REQUEST) + rows * BYTES_PER_TIMESERIES_ROW
    check_size(exp, memory_bytes=expected / 0.8 * 1.001)
    with pytest.raises(ConfigError, match="1e\\+06 closed-loop users x 2000 B"):
        check_size(exp, memory_bytes=expected / 0.8 * 0.999)


def test_serve_refuses_a_port_in_use_before_starting_ray(tmp_path: Path, capsys) -> None:
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _refused(tmp_path, capsys, ["serve", _exp_file(tmp_path), "--port", str(port)],
                 "argument '--port'", f"value {port} is in use on 127.0.0.1")


@pytest.mark.parametrize("host, needle", [
    ("not-a-host.invalid", "is not a host name or address"),
    ("192.0.2.1", "is not an address this machine can listen on"),  # TEST-NET-1, not ours
])
def test_serve_names_a_bad_host_not_the_port(tmp_path: Path, capsys, host: str,
                                             needle: str) -> None:
    err = _refused(tmp_path, capsys, ["serve", _exp_file(tmp_path), "--host", host,
                                      "--port", "0"], "argument '--host'", needle)
    assert "--port" not in err


def test_a_tiny_sample_interval_is_refused_whatever_the_memory() -> None:
    exp = make_experiment(output__sample_interval_s=2e-6)  # 5 s / 2e-6 x 7 series = 1.75e7 rows
    with pytest.raises(ConfigError, match=r"'output.sample_interval_s': value 2e-06 makes "
                                          r"1.75e\+07 timeseries rows .* sample_interval_s >= 3.5e-06"):
        check_size(exp, memory_bytes=1e15)
    check_size(make_experiment(output__sample_interval_s=3.6e-6), memory_bytes=1e15)
