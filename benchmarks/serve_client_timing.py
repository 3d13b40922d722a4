"""Client-measured against emulated TTFT and inter-token latency under ``disagg serve``.

Serves an experiment (default the quickstart) in this process on the ray engine, then at each
concurrency (``--concurrency 1,8,32,64``) runs that many streaming clients of the ``openai``
package (``AsyncOpenAI``, asyncio) for ``--rounds`` requests each; each client measures its
TTFT (call -> first content chunk) and mean inter-token gap ((last - first chunk) / (tokens -
1)). Once stopped, every request's row of ``requests.parquet`` (found by its
``X-Disagg-Request-Id``) gives the emulated ``ttft_s`` and ``tpot_s``; the table reports, per
concurrency, the mean client / emulated ratio (x dilation) and the server's own lateness
warnings (``disagg:client_lag_over_share``). ``vllm bench serve`` is the issue's reference
client; vLLM is too large to install here, so this uses the openai client it is built on.

    python benchmarks/serve_client_timing.py [--concurrency 1,8,32,64] [--rounds 4]
        [--max-tokens 128] [--prompt-chars 4000] [--dilation 1] [--experiment FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
from openai import AsyncOpenAI

from disagg.cluster.config import load_experiment
from disagg.experiments.serve.app import ServeSettings
from disagg.experiments.serve.protocol import Limits
from disagg.experiments.serve.server import ServeOptions, ServeRunner

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


async def one(client: AsyncOpenAI, model: str, prompt: str, max_tokens: int
              ) -> tuple[int, float, float]:
    """(disagg request id, client TTFT s, client mean inter-token gap s) of one stream."""
    sent = time.perf_counter()
    raw = await client.completions.with_raw_response.create(
        model=model, prompt=prompt, max_tokens=max_tokens, stream=True)
    rid = int(raw.headers["x-disagg-request-id"])
    times = []
    async for chunk in raw.parse():
        if chunk.choices and chunk.choices[0].text:
            times.append(time.perf_counter())
    gap = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 0.0
    return rid, times[0] - sent, gap


async def level(base: str, model: str, concurrency: int, rounds: int, prompt: str,
                max_tokens: int) -> list[tuple[int, float, float]]:
    """``concurrency`` clients, ``rounds`` requests each, one after the other."""
    client = AsyncOpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=600)

    async def worker() -> list[tuple[int, float, float]]:
        return [await one(client, model, prompt, max_tokens) for _ in range(rounds)]

    out = await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()
    return [x for w in out for x in w]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(QUICKSTART))
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt-chars", type=int, default=4000)
    ap.add_argument("--dilation", type=float, default=1.0)
    args = ap.parse_args()
    exp = load_experiment(args.experiment, {"experiment.engine": "ray",
                                            "experiment.dilation": args.dilation})
    model = exp.model.name
    out = Path(tempfile.mkdtemp(prefix="serve_timing_")) / "results"
    runner = ServeRunner(exp, ServeOptions("127.0.0.1", 0, None,
                                           ServeSettings(Limits(model, 131072, 64)), out))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert runner.ready.wait(300)
    base = f"http://127.0.0.1:{runner.port}"
    got: dict[int, list[tuple[int, float, float]]] = {}
    lag: dict[int, str] = {}
    try:
        for c in (int(x) for x in args.concurrency.split(",")):
            got[c] = asyncio.run(level(base, model, c, args.rounds, "x" * args.prompt_chars,
                                       args.max_tokens))
            lag[c] = " ".join(line for line in httpx.get(f"{base}/metrics").text.splitlines()
                              if line.startswith("disagg:client_lag_over_share_total"))
    finally:
        runner.stop()
        thread.join(300)
    rows = {r["request_id"]: r for r in pq.read_table(out / "requests.parquet").to_pylist()}
    print(f"dilation {args.dilation:g}, {args.max_tokens} output tokens, "
          f"{args.prompt_chars} prompt chars, {args.rounds} requests per client")
    print("| concurrency | requests | client TTFT / emulated | client ITL / emulated TPOT "
          "| emulated TTFT mean (s) | emulated TPOT mean (ms) |")
    print("|---|---|---|---|---|---|")
    for c, results in got.items():
        d = args.dilation
        ttft = np.array([t / (rows[r]["ttft_s"] * d) for r, t, _ in results])
        itl = np.array([g / (rows[r]["tpot_s"] * d) for r, _, g in results])
        e_ttft = np.mean([rows[r]["ttft_s"] for r, _, _ in results])
        e_tpot = np.mean([rows[r]["tpot_s"] for r, _, _ in results]) * 1e3
        print(f"| {c} | {len(results)} | x{ttft.mean():.3f} | x{itl.mean():.3f} | "
              f"{e_ttft:.3f} | {e_tpot:.2f} |")
    print("server lateness counters at the end:", lag[max(lag)] if lag else "-")


if __name__ == "__main__":
    main()
