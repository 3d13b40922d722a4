"""Every measured or published serving figure the models are checked against, with its source.

Copied from ``shared/reference/calibration.md``. Each figure says how it is used: ``fit`` (the
least-squares fit in :mod:`disagg.cluster.hardware.fit` chooses constants to match it) or
``predict`` (never seen by the fit: an honest check). ``comparable = False`` marks a figure
measured under something the emulator does not model (speculative decoding, an earlier software
release); it stays in the table but out of the prediction MAPE.

A figure's scenario says what is emulated: ``decode`` (one decode step of ``batch`` streams at
``prompt + output/2`` context), ``user_tok_s`` (1 / that step), ``ttft`` (a batch-1 prefill of
``prompt`` tokens, plus one decode step), ``closed_loop`` (a colocated server with ``batch``
users in a closed loop, steady state, see :func:`calibration.closed_loop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

Kind = Literal["fit", "predict"]
Metric = Literal["itl_ms", "ttft_ms", "user_tok_s", "total_tok_s"]
Scenario = Literal["decode", "ttft", "closed_loop"]

NIM = "[V] docs.nvidia.com/nim/benchmarking/llm (NIM 1.8.0, AIPerf)"
NEURON_70B = ("[V] aws-neuron-sdk nxd-inference trn2-llama3.3-70b tutorial, "
              "llama70b_perf_comparison.csv (LLMPerf, 50 requests)")
NEURON_EAGLE = "[V] aws-neuron vllm-neuron eagle3 tutorial (vllm bench serve)"
AA = "[2] Artificial Analysis via The Register"
CEREBRAS = "[V] Cerebras blog"


@dataclass(frozen=True)
class Figure:
    """One published figure and the configuration it was measured on."""

    key: str
    model: str
    hardware: str
    chips: int
    weight_dtype: str
    kv_dtype: str
    scenario: Scenario
    metric: Metric
    published: float
    kind: Kind
    source: str
    prompt: int = 1_000
    output: int = 0
    batch: int = 1
    comparable: bool = True
    note: str = ""

    @property
    def configuration(self) -> str:
        """A one-line description of what was measured."""
        load = f"c={self.batch}" if self.scenario == "closed_loop" else f"batch {self.batch}"
        io = f"{self.prompt:,}/{self.output:,}" if self.output else f"{self.prompt:,} ctx"
        return (f"{self.model} on {self.chips} x {self.hardware} {self.weight_dtype}, {load}, "
                f"{io}")


def _nim(c: int, itl: float | None, tput: float, kind_itl: Kind, ttft: float | None = None,
         kind_ttft: Kind = "predict") -> list[Figure]:
    nim = partial(Figure, model="llama-3.1-70b", hardware="h100", chips=2, weight_dtype="fp8",
                  kv_dtype="fp8", scenario="closed_loop", prompt=5_000, output=500, batch=c,
                  source=f"{NIM}, Llama-3.3-70B, 2 x H100 FP8 TP2, 5000/500")
    note = ("follows almost directly from the fitted TTFT and ITL" if c <= 5 else
            "KV capacity bounds the running users here" if c >= 100 else "")
    out = [nim(key=f"nim70b-c{c}-tput", metric="total_tok_s", published=tput, kind="predict",
               note=note)]
    if itl is not None:
        out.append(nim(key=f"nim70b-c{c}-itl", metric="itl_ms", published=itl, kind=kind_itl,
                       note=note if c >= 100 else ""))
    if ttft is not None:
        out.append(nim(key=f"nim70b-c{c}-ttft", metric="ttft_ms", published=ttft,
                       kind=kind_ttft))
    return out


def _h100() -> list[Figure]:
    rows = (_nim(1, 18.58, 51.67, "fit", 406.77, "fit") + _nim(5, 21.83, 218.48, "fit")
            + _nim(25, 38.75, 623.4, "predict") + _nim(50, 59.73, 814.37, "predict")
            + _nim(100, 92.91, 917.26, "predict") + _nim(200, 93.06, 920.54, "predict"))
    long_out = partial(Figure, model="llama-3.1-70b", hardware="h100", chips=2,
                       weight_dtype="fp8", kv_dtype="fp8", scenario="closed_loop", prompt=500,
                       output=2_000, kind="predict",
                       source=f"{NIM}, Llama-3.3-70B, 2 x H100 FP8 TP2, 500/2000")
    rows += [long_out(key="nim70b-long-ttft", metric="ttft_ms", published=47.8),
             long_out(key="nim70b-long-itl", metric="itl_ms", published=18.9)]
    small = partial(Figure, model="llama-3.1-8b", hardware="h100", chips=1, weight_dtype="fp8",
                    kv_dtype="fp8", scenario="closed_loop", prompt=500, output=2_000,
                    kind="predict", source=f"{NIM}, Llama-3.1-8B", comparable=False,
                    note="configuration not read from the page: 1 x H100 FP8, 500/2000 assumed")
    rows += [small(key="nim8b-c1-ttft", metric="ttft_ms", published=10.3),
             small(key="nim8b-c1-itl", metric="itl_ms", published=4.63)]
    rows += [
        Figure("aa70b-h100", "llama-3.1-70b", "h100", 8, "bf16", "bf16", "decode", "user_tok_s",
               128, "predict", AA, comparable=False,
               note="best H100 provider, configuration unpublished: 8 x H100 BF16 TP8 assumed"),
        Figure("aa8b-h100", "llama-3.1-8b", "h100", 1, "bf16", "bf16", "decode", "user_tok_s",
               242, "predict", AA, comparable=False,
               note="best H100 provider, configuration unpublished: 1 x H100 BF16 assumed"),
    ]
    return rows


def _trainium() -> list[Figure]:
    t70 = partial(Figure, model="llama-3.1-70b", hardware="trainium2", chips=16,
                  weight_dtype="bf16", kv_dtype="bf16", prompt=10_000, output=1_500, batch=1)
    spec = ("EAGLE3 speculative decoding on (not modeled): plain decode would be slower than "
            "published")
    return [
        t70(key="trn2-70b-ttft-a", scenario="ttft", metric="ttft_ms", published=575.7,
            kind="fit", source=f"{NEURON_70B}, run A"),
        t70(key="trn2-70b-itl-a", scenario="decode", metric="itl_ms", published=19.83,
            kind="fit", source=f"{NEURON_70B}, run A"),
        t70(key="trn2-70b-ttft-b", scenario="ttft", metric="ttft_ms", published=814.3,
            kind="predict", source=f"{NEURON_70B}, run B (later SDK)",
            note="same configuration as run A: the spread between runs"),
        t70(key="trn2-70b-itl-b", scenario="decode", metric="itl_ms", published=19.66,
            kind="predict", source=f"{NEURON_70B}, run B (later SDK)"),
        Figure("trn2-8b-ttft", "llama-3.1-8b", "trainium2", 2, "bf16", "bf16", "ttft", "ttft_ms",
               51.1, "predict", f"{NEURON_EAGLE}, Llama-3.1-8B TP8", prompt=512, output=128,
               batch=1, comparable=False, note=spec + "; concurrency 2"),
        Figure("trn2-8b-tpot", "llama-3.1-8b", "trainium2", 2, "bf16", "bf16", "decode", "itl_ms",
               10.52, "predict", f"{NEURON_EAGLE}, Llama-3.1-8B TP8", prompt=512, output=128,
               batch=2, comparable=False, note=spec),
        Figure("trn2-oss-ttft", "gpt-oss-120b", "trainium2", 4, "bf16", "bf16", "ttft",
               "ttft_ms", 252.3, "predict", f"{NEURON_EAGLE}, gpt-oss-120B TP16", prompt=512,
               output=128, comparable=False, note=spec),
        Figure("trn2-oss-tpot", "gpt-oss-120b", "trainium2", 4, "bf16", "bf16", "decode",
               "itl_ms", 7.00, "predict", f"{NEURON_EAGLE}, gpt-oss-120B TP16", prompt=512,
               output=128, comparable=False, note=spec),
    ]


def _cs3() -> list[Figure]:
    def speed(key: str, model: str, wafers: int, tok_s: float, kind: Kind, source: str,
              comparable: bool = True, note: str = "") -> Figure:
        return Figure(key, model, "cs3", wafers, "bf16", "bf16", "decode", "user_tok_s", tok_s,
                      kind, source, comparable=comparable, note=note)

    launch = "launch software (2024-08); the model is fitted to the current software"
    return [
        speed("cs3-70b-2100", "llama-3.1-70b", 4, 2_100, "fit", f"{CEREBRAS} 2024-10; "
              "[2] The Register", note="reportedly with speculative decoding"),
        speed("cs3-70b-2314", "llama-3.1-70b", 4, 2_314, "fit",
              "[2] Artificial Analysis via anintent.com", note="Llama 3.3 70B, same shape"),
        speed("cs3-8b-2200", "llama-3.1-8b", 1, 2_200, "fit", "[2] Artificial Analysis via press"),
        speed("cs3-oss-3000", "gpt-oss-120b", 6, 3_000, "predict",
              "[2] press; docs.getpatter.com",
              note="'up to' (a marketing maximum); 6 wafers hold 16-bit weights (assumption)"),
        speed("cs3-8b-1800", "llama-3.1-8b", 1, 1_800, "predict", f"{CEREBRAS} launch 2024-08",
              comparable=False, note=launch),
        speed("cs3-70b-450", "llama-3.1-70b", 4, 450, "predict", f"{CEREBRAS} launch 2024-08",
              comparable=False, note=launch),
        Figure("cs3-70b-ttft", "llama-3.1-70b", "cs3", 4, "bf16", "bf16", "ttft", "ttft_ms", 170,
               "predict", "[2] createaiagent.net (Artificial Analysis)", comparable=False,
               note="end-to-end API TTFT (network, queueing) for an assumed 1,000-token prompt; "
               "the model is the wafer's prefill alone"),
    ]


def figures() -> list[Figure]:
    """Every reference figure, H100 first, then Trainium2, then CS-3."""
    return _h100() + _trainium() + _cs3()
