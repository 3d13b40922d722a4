"""``disagg serve EXP``: the experiment's cluster behind an OpenAI-compatible HTTP endpoint
(docs/serve.md)."""

from __future__ import annotations

import argparse
import os
import threading
from typing import Any

from rich.console import Console

from disagg.cluster.config import load_experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.checks import check_experiment
from disagg.experiments.cli.common import EXIT_OK, output_path, overrides
from disagg.experiments.results.lock import output_locked

LLAMA_31_CONTEXT = 131072  # Llama 3.1's context length (Meta's model card: 128K tokens)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"argument '--port': value {args.port} is not a port (0..65535)")
    from disagg.experiments.serve.protocol import TOKENIZERS  # deferred: see main.py

    if args.tokenizer not in TOKENIZERS:
        raise ConfigError(f"argument '--tokenizer': value {args.tokenizer!r} is not one of "
                          f"{', '.join(TOKENIZERS)}")
    if not 0 <= args.base_port <= 65535:
        raise ConfigError(f"argument '--base-port': value {args.base_port} is not a port "
                          "(0..65535)")
    for flag in ("max_model_len", "default_max_tokens", "max_body_bytes"):
        value = getattr(args, flag)
        if value < 1:
            raise ConfigError(f"argument '--{flag.replace('_', '-')}': value {value} must be "
                              f"at least 1")
    from disagg.experiments.serve.listen import check_listen  # deferred: see main.py

    check_listen(args.host, args.port)  # before Ray starts: the right option named at once


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    # deferred (FastAPI, uvicorn, Ray): only `disagg serve` pays for them
    from disagg.experiments.serve.app import ServeSettings
    from disagg.experiments.serve.protocol import Limits
    from disagg.cluster.hardware.perf import kv_bytes
    from disagg.experiments.serve.server import ServeOptions, ServeRunner
    from disagg.experiments.serve.units import unit_caches
    from disagg.experiments.view.console import summary_table

    _check(args)
    exp = load_experiment(args.experiment, {**overrides(args), "experiment.engine": "ray"})
    check_experiment(exp)
    limits = Limits(args.served_model_name or exp.model.name, args.max_model_len,
                    args.default_max_tokens, args.tokenizer)
    settings = ServeSettings(limits, args.api_key or os.environ.get("DISAGG_API_KEY"),
                             args.max_body_bytes, unit_caches(exp),
                             float(kv_bytes(1, exp.model)))
    out_dir = output_path(args, exp)  # checked before Ray starts, as disagg run does
    with output_locked("--out" if args.out else "output.dir", out_dir):
        output_path(args, exp)  # again, now that no other disagg can be writing it
        runner = ServeRunner(exp, ServeOptions(args.host, args.port, args.address, settings,
                                               out_dir, per_unit=args.per_unit,
                                               base_port=args.base_port))
        console.print(f"disagg: starting {exp.experiment.name} ({limits.model}) on the ray "
                      f"engine, dilation {exp.experiment.dilation:g}")

        def announce() -> None:
            if runner.ready.wait():
                console.print(f"disagg: serving on http://{args.host}:{runner.port}/v1; Ctrl-C "
                              f"stops and writes {out_dir}")
                for unit, port in sorted(runner.unit_ports.items(), key=lambda kv: kv[1]):
                    console.print(f"disagg: unit {unit} on http://{args.host}:{port}")

        threading.Thread(target=announce, daemon=True).start()
        result = runner.run()
    console.print(summary_table(result.summary))
    console.print(f"results in {result.out_dir}")
    return EXIT_OK


def add_command(sub: Any) -> None:
    """Register ``serve`` on the ``disagg`` parser's subcommands."""
    p = sub.add_parser("serve", help="serve the experiment's cluster over an OpenAI-compatible "
                       "HTTP API (vLLM's endpoints and /metrics)")
    p.add_argument("experiment", help="experiment TOML file (its workload is not used)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    p.add_argument("--dilation", type=float, help="wall seconds per emu second (tokens are "
                   "released at emu times scaled by this)")
    p.add_argument("--seed", type=int)
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else an "
                   "embedded local Ray)")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1 (default: "
                   "DISAGG_API_KEY, else no key)")
    p.add_argument("--out", help="results folder written on stop (default: output.dir); must "
                   "not exist")
    p.add_argument("--force", action="store_true",
                   help="replace the output folder if disagg wrote it (its results files; files "
                   "you added there are kept; nothing else is ever replaced)")
    p.add_argument("--served-model-name", help="model name clients use (default: the "
                   "experiment's model name)")
    p.add_argument("--max-model-len", type=int, default=LLAMA_31_CONTEXT,
                   help="context length in tokens: prompt + max_tokens beyond it is refused")
    p.add_argument("--default-max-tokens", type=int, default=256,
                   help="output tokens of a chat request that sets no max_tokens")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20,
                   help="largest request body accepted (default 1 MiB)")
    p.add_argument("--tokenizer", default="bytes4", help="how prompt text is counted: bytes4 "
                   "(UTF-8 bytes / 4, default), chars4 (characters / 4), words (words / 0.75)")
    p.add_argument("--per-unit", action="store_true", help="also serve each prefill, decode "
                   "and colocated unit on its own port (vLLM's API and P/D protocol, for a "
                   "P/D router such as vllm-router)")
    p.add_argument("--base-port", type=int, default=0, help="with --per-unit: the first "
                   "unit's port, then one up per unit (default 0: any free ports)")
    p.set_defaults(func=cmd_serve)
