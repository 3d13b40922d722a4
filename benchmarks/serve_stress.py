"""Concurrent streaming clients against ``disagg serve``: does every request complete, run after run?

Starts ``disagg serve EXP`` (embedded Ray) on a loopback port, sends ``--clients`` concurrent
streaming completions with the ``openai`` client, stops the server with SIGINT and reads the
results folder it wrote; repeats ``--runs`` times and prints one line per run and a total.
Regression check for issue 21 (a decode unit that crashed under lag stalled every stream).

    python benchmarks/serve_stress.py [--exp experiments/quickstart.toml] [--runs 5] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parents[1]


async def _one(client: AsyncOpenAI, model: str, i: int) -> int:
    """One streaming completion; the number of text chunks received."""
    stream = await client.completions.create(
        model=model, prompt="hello " * (50 + i), max_tokens=150 + 5 * i, stream=True)
    chunks = 0
    async for chunk in stream:
        chunks += bool(chunk.choices and chunk.choices[0].text)
    return chunks


async def _clients(port: int, n: int) -> list[int | BaseException]:
    async with AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x",
                           timeout=300) as client:
        model = (await client.models.list()).data[0].id
        return await asyncio.gather(*(_one(client, model, i) for i in range(n)),
                                    return_exceptions=True)


def _wait_healthy(port: int, proc: subprocess.Popen[str], limit_s: float = 180.0) -> None:
    """Poll /health until 200 (the server is up) or the process ends."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"disagg serve exited {proc.returncode} before it was healthy")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling an external process's readiness, not synchronising our own code
    raise RuntimeError("disagg serve was not healthy in time")


def one_run(exp: Path, port: int, clients: int, dilation: float) -> tuple[bool, str]:
    """Serve, send the clients, stop; (every request completed, one line saying so)."""
    out = Path(tempfile.mkdtemp(prefix="serve-stress-")) / "results"
    proc = subprocess.Popen(["disagg", "serve", str(exp), "--port", str(port), "--dilation",
                             str(dilation), "--out", str(out)], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(port, proc)
        res = asyncio.run(_clients(port, clients))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    errors = [r for r in res if isinstance(r, BaseException)]
    summary = json.loads((out / "summary.json").read_text()) if out.exists() else {}
    ok = not errors and summary.get("completed") == clients
    return ok, (f"errors {len(errors)}, completed {summary.get('completed')} of "
                f"{summary.get('submitted')}, exit {proc.returncode}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", type=Path, default=ROOT / "experiments" / "quickstart.toml")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--dilation", type=float, default=1.0)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    good = 0
    for k in range(args.runs):
        ok, line = one_run(args.exp, args.port, args.clients, args.dilation)
        good += ok
        print(f"run {k + 1}: {'ok' if ok else 'FAILED'} ({line})", flush=True)
    print(f"{good}/{args.runs} runs completed every request")


if __name__ == "__main__":
    main()
