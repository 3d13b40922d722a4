"""Where in the speculative-decoding space a CS-3 pipeline reaches Cerebras' 2,100 tok/s on 70B.

    python benchmarks/claims_speculative.py [--alphas 0.6,0.7,0.8,0.9,0.95] [--gammas 4,8]

Runs experiments/accuracy/cs3_single_user.toml (one stream, Llama-3.1-70B on a 4-wafer CS-3
pipeline, virtual engine) plain and with ``[decode.speculative]``: a Llama-3.1-8B draft on one
more wafer (the assumption docs/accuracy.md states for case ``cs3-70b-2100``; Cerebras names no
draft), or draft heads on the target (EAGLE-style), proposing gamma tokens accepted with
probability alpha each. Prints per-user decode speed
against Cerebras' published 2,100 tok/s (speculative, 2024-10) and the GPUs' 100-150 tok/s that
AWS quotes. The catalog's range for alpha where a source publishes none is 0.6-0.8
(``disagg catalog --assumptions``); the larger values show what it would take. Regenerated into
docs/claims.md by ``python benchmarks/regen_docs.py --only claims-speculative``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from disagg.cluster.config import load_experiment
from disagg.experiments.run import run_experiment

EXP = Path(__file__).resolve().parents[1] / "experiments" / "accuracy" / "cs3_single_user.toml"
PUBLISHED_TOK_S = 2_100.0  # Cerebras, Llama 3.1 70B, 2024-10 (speculative; reference.py)
BASE = {"experiment.engine": "virtual", "model.name": "llama-3.1-70b",
        "decode.chips_per_unit": 4}


def user_tok_s(over: dict[str, Any]) -> float:
    """Per-user decode speed (1 / mean TPOT of the completed requests), tokens/s."""
    result = run_experiment(load_experiment(EXP, {**BASE, **over}))
    rows = [r for r in result.tables["requests"].to_pylist() if r["status"] == "completed"]
    if not rows:
        raise SystemExit("no request completed")
    return len(rows) / sum(r["tpot_s"] for r in rows)


def speculative(draft: str, gamma: int, alpha: float) -> dict[str, Any]:
    """``decode.speculative``: the assumed 8B draft on one more wafer (``"8b"``), or draft heads
    on the target (``"heads"``, EAGLE-style, at the catalog's default cost per head pass)."""
    cfg: dict[str, Any] = {"num_speculative_tokens": gamma, "acceptance_rate": alpha}
    if draft == "heads":
        return {"decode.speculative": {"method": "draft_heads", **cfg}}
    return {"decode.speculative": {"method": "draft_model", **cfg, "draft_model": "llama-3.1-8b",
                                   "draft_hardware": "cs3", "draft_chips": 1}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alphas", default="0.6,0.7,0.8,0.9,0.95")
    ap.add_argument("--gammas", default="4,8")
    args = ap.parse_args()
    plain = user_tok_s({})
    print(f"Plain decoding (fitted to Cerebras' 450 tok/s): {plain:,.0f} tok/s per user.\n")
    print("| draft | proposes (gamma) | acceptance (alpha) | in the catalog's range | "
          "tok/s per user | x plain | of the published 2,100 |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for draft in ("8b", "heads"):
        for gamma in (int(g) for g in args.gammas.split(",")):
            for alpha in (float(a) for a in args.alphas.split(",")):
                v = user_tok_s(speculative(draft, gamma, alpha))
                inside = "yes" if 0.6 <= alpha <= 0.8 else "no"
                name = "Llama-3.1-8B, 1 wafer" if draft == "8b" else "draft heads"
                print(f"| {name} | {gamma} | {alpha:g} | {inside} | {v:,.0f} | "
                      f"{v / plain:.2f} | {100 * v / PUBLISHED_TOK_S:.0f} % |", flush=True)


if __name__ == "__main__":
    main()
