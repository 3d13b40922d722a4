"""Every measured or published serving figure the models are checked against, with its source.

Copied from ``shared/reference/calibration.md``. Each figure says how it is used: ``fit`` (the
least-squares fit in :mod:`disagg.cluster.hardware.fit` chooses constants to match it) or
``predict`` (never seen by the fit: an honest check). ``comparable = False`` marks a figure
measured under something the emulator does not model (speculative decoding, an earlier software
release, an unstated method); it stays in the table, flagged, but out of both MAPEs.

Every figure carries its **method** (``plain``; ``speculative``, with the draft in ``spec``;
``unknown`` when the source does not say), its precision (``weight_dtype``), its software
``generation`` and ``date``. Only ``plain`` figures may be ``fit`` (a figure refuses to be built
otherwise), and the fit takes one generation per hardware (:data:`FIT_GENERATION`). A
``speculative`` figure is a prediction evaluated through the speculative-decoding model
(:mod:`disagg.cluster.hardware.speculative`) with its ``spec``: gamma and the draft from the
source, the acceptance rate from the source where published, else from
:data:`ASSUMED_ALPHA` (the one place that assumption lives).

A figure's scenario says what is emulated: ``decode`` (one decode step of ``batch`` streams at
``prompt + output/2`` context), ``user_tok_s`` (1 / that step), ``ttft`` (a batch-1 prefill of
``prompt`` tokens, plus one decode step), ``closed_loop`` (a colocated server with ``batch``
users in a closed loop, steady state, see :func:`calibration.closed_loop`), ``capacity``
(``units`` colocated servers under open-loop arrivals: the output tokens/s they sustain while
p99 TTFT and p99 TPOT stay within ``ttft_limit_ms`` / ``tpot_limit_ms``, MLPerf's Server and
Interactive scenarios; see :func:`calibration.capacity_tok_s`). ``chips`` is per server
(its TP degree) and ``units`` the servers (``chips x units`` GPUs in all). The throughput
figures (MLPerf, TensorRT-LLM) are in :mod:`disagg.cluster.hardware.reference_throughput`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

Kind = Literal["fit", "predict"]
Method = Literal["plain", "speculative", "unknown"]
Metric = Literal["itl_ms", "ttft_ms", "user_tok_s", "total_tok_s", "capacity_tok_s"]
Scenario = Literal["decode", "ttft", "closed_loop", "capacity"]

NIM = "[V] docs.nvidia.com/nim/benchmarking/llm (NIM 1.8.0, AIPerf)"
NEURON_70B = ("[V] aws-neuron-sdk nxd-inference trn2-llama3.3-70b tutorial, "
              "llama70b_perf_comparison.csv (LLMPerf, 50 requests)")
NEURON_EAGLE = "[V] aws-neuron vllm-neuron eagle3 tutorial (vllm bench serve)"
AA = "[2] Artificial Analysis via The Register"
CEREBRAS = "[V] Cerebras blog"

# The software generation each hardware's fit uses (plain figures of that generation only).
FIT_GENERATION = {"h100": "NIM 1.8.0", "trainium2": "Neuron SDK run A",
                  "trainium2-vllm-neuron": "vllm-neuron SDK 2.32",
                  "cs3": "Cerebras launch 2024-08"}
# Acceptance rate per proposed token when the source publishes none (assumption, one place):
# Leviathan et al. (ICML 2023) and the EAGLE papers report 0.6-0.8 for a same-family small draft
# or an EAGLE head on chat workloads; 0.7 is the middle, low 0.6, high 0.8.
ASSUMED_ALPHA = 0.7
# Proposals per step when the source does not state them (assumption: vLLM's EAGLE examples
# use 3-5 speculative tokens; 4 is the middle).
ASSUMED_EAGLE_GAMMA = 4


@dataclass(frozen=True)
class SpecCase:
    """How a speculative figure speculated: method, proposals per step, acceptance and draft.

    ``draft`` names the draft model (a catalog model or one of
    :func:`disagg.cluster.hardware.calibration.draft_model`'s); ``alpha_source`` says whether
    the acceptance rate is published or the stated assumption :data:`ASSUMED_ALPHA`."""

    method: Literal["draft_model", "draft_heads"]
    gamma: int
    alpha: float = ASSUMED_ALPHA
    alpha_source: str = "assumption: ASSUMED_ALPHA (no published acceptance rate)"
    draft: str = ""
    draft_chips: int = 0
    fused: bool = False  # draft and target compiled into one graph (NxD fused speculation)


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
    method: Method = "plain"
    generation: str = ""
    date: str = ""
    spec: SpecCase | None = None
    units: int = 1
    ttft_limit_ms: float = 0.0
    tpot_limit_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "fit" and self.method != "plain":
            raise ValueError(f"figure {self.key}: method {self.method!r} cannot be fitted; "
                             "allowed: plain")
        if self.method == "speculative" and self.comparable and self.spec is None:
            raise ValueError(f"figure {self.key}: a comparable speculative figure needs spec")
        if self.method != "speculative" and self.spec is not None:
            raise ValueError(f"figure {self.key}: spec given for a {self.method} figure")
        if (self.scenario == "capacity") != (self.ttft_limit_ms > 0 and self.tpot_limit_ms > 0):
            raise ValueError(f"figure {self.key}: latency limits go with (and only with) the "
                             "capacity scenario; allowed: both limits > 0 for capacity")

    @property
    def in_mape(self) -> bool:
        """Whether the figure counts in its kind's MAPE (the models can express it)."""
        return self.comparable and self.method != "unknown"

    @property
    def configuration(self) -> str:
        """A one-line description of what was measured."""
        load = {"closed_loop": f"c={self.batch}", "capacity": f"p99 TTFT <= "
                f"{self.ttft_limit_ms:g} ms, TPOT <= {self.tpot_limit_ms:g} ms"}.get(
            self.scenario, f"batch {self.batch}")
        io = f"{self.prompt:,}/{self.output:,}" if self.output else f"{self.prompt:,} ctx"
        gpus = (f"{self.units} x TP{self.chips} ({self.units * self.chips} x {self.hardware})"
                if self.units > 1 else f"{self.chips} x {self.hardware}")
        return f"{self.model} on {gpus} {self.weight_dtype}, {load}, {io}"


def _nim(c: int, itl: float | None, tput: float, kind_itl: Kind, ttft: float | None = None,
         kind_ttft: Kind = "predict") -> list[Figure]:
    nim = partial(Figure, model="llama-3.1-70b", hardware="h100", chips=2, weight_dtype="fp8",
                  kv_dtype="fp8", scenario="closed_loop", prompt=5_000, output=500, batch=c,
                  generation="NIM 1.8.0", date="2025",
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
                       output=2_000, kind="predict", generation="NIM 1.8.0", date="2025",
                       source=f"{NIM}, Llama-3.3-70B, 2 x H100 FP8 TP2, 500/2000")
    rows += [long_out(key="nim70b-long-ttft", metric="ttft_ms", published=47.8),
             long_out(key="nim70b-long-itl", metric="itl_ms", published=18.9)]
    small = partial(Figure, model="llama-3.1-8b", hardware="h100", chips=1, weight_dtype="fp8",
                    kv_dtype="fp8", scenario="closed_loop", prompt=500, output=2_000,
                    kind="predict", source=f"{NIM}, Llama-3.1-8B", comparable=False,
                    generation="NIM 1.8.0", date="2025",
                    note="configuration not read from the page: 1 x H100 FP8, 500/2000 assumed")
    rows += [small(key="nim8b-c1-ttft", metric="ttft_ms", published=10.3),
             small(key="nim8b-c1-itl", metric="itl_ms", published=4.63)]
    rows += [
        Figure("aa70b-h100", "llama-3.1-70b", "h100", 8, "bf16", "bf16", "decode", "user_tok_s",
               128, "predict", AA, comparable=False,
               note="best H100 provider, configuration unpublished: 8 x H100 BF16 TP8 assumed",
               method="unknown", generation="provider, unstated", date="2024-08"),
        Figure("aa8b-h100", "llama-3.1-8b", "h100", 1, "bf16", "bf16", "decode", "user_tok_s",
               242, "predict", AA, comparable=False,
               note="best H100 provider, configuration unpublished: 1 x H100 BF16 assumed",
               method="unknown", generation="provider, unstated", date="2024-08"),
    ]
    return rows


def _trainium() -> list[Figure]:
    t70 = partial(Figure, model="llama-3.1-70b", hardware="trainium2", chips=16,
                  weight_dtype="bf16", kv_dtype="bf16", prompt=10_000, output=1_500, batch=1,
                  generation="Neuron SDK run A", date="2025")
    run_b = partial(t70, generation="Neuron SDK run B (later)", source=f"{NEURON_70B}, run B")
    eagle = partial(Figure, hardware="trainium2-vllm-neuron", weight_dtype="bf16", kv_dtype="bf16",
                    prompt=512, output=128, kind="predict", generation="vllm-neuron SDK 2.32",
                    date="2026-08")
    heads = SpecCase("draft_heads", ASSUMED_EAGLE_GAMMA, alpha_source="assumption: "
                     "ASSUMED_ALPHA; gamma ASSUMED_EAGLE_GAMMA (the tutorial's not read)")
    return [
        t70(key="trn2-70b-ttft-a", scenario="ttft", metric="ttft_ms", published=575.7,
            kind="fit", source=f"{NEURON_70B}, run A"),
        t70(key="trn2-70b-itl-a", scenario="decode", metric="itl_ms", published=19.83,
            kind="fit", source=f"{NEURON_70B}, run A"),
        run_b(key="trn2-70b-ttft-b", scenario="ttft", metric="ttft_ms", published=814.3,
              kind="predict", note="same configuration as run A: the spread between runs"),
        run_b(key="trn2-70b-itl-b", scenario="decode", metric="itl_ms", published=19.66,
              kind="predict"),
        t70(key="trn2-70b-spec-itl", scenario="decode", metric="itl_ms", published=5.63,
            kind="predict", source=f"{NEURON_70B}, fused speculative decoding",
            method="speculative", spec=SpecCase("draft_model", 7, draft="llama-3.2-1b",
                                                draft_chips=16, fused=True),
            note="fused speculation (draft and target in one compiled graph, same TP 64), "
            "1B draft, k=7 (published); amortised ITL"),
        eagle(key="trn2-8b-ttft", model="llama-3.1-8b", chips=2, scenario="ttft",
              metric="ttft_ms", published=51.1, source=f"{NEURON_EAGLE}, Llama-3.1-8B TP8",
              note="plain baseline row; concurrency 2 (batch-1 prefill emulated)"),
        eagle(key="trn2-8b-tpot", model="llama-3.1-8b", chips=2, scenario="decode",
              metric="itl_ms", published=10.52, batch=2, kind="fit",
              source=f"{NEURON_EAGLE}, Llama-3.1-8B TP8",
              note="plain baseline row; the vLLM-neuron stack's step overhead is fitted to it"),
        eagle(key="trn2-8b-eagle-tpot", model="llama-3.1-8b", chips=2, scenario="decode",
              metric="itl_ms", published=6.4, batch=2, method="speculative", spec=heads,
              source=f"{NEURON_EAGLE}, Llama-3.1-8B TP8, EAGLE3"),
        eagle(key="trn2-oss-ttft", model="gpt-oss-120b", chips=4, scenario="ttft",
              metric="ttft_ms", published=252.3, source=f"{NEURON_EAGLE}, gpt-oss-120B TP16",
              note="plain baseline row"),
        eagle(key="trn2-oss-tpot", model="gpt-oss-120b", chips=4, scenario="decode",
              metric="itl_ms", published=7.00, source=f"{NEURON_EAGLE}, gpt-oss-120B TP16",
              note="plain baseline row"),
        eagle(key="trn2-oss-eagle-tpot", model="gpt-oss-120b", chips=4, scenario="decode",
              metric="itl_ms", published=5.8, method="speculative", spec=heads,
              source=f"{NEURON_EAGLE}, gpt-oss-120B TP16, EAGLE3"),
    ]


def _cs3() -> list[Figure]:
    def speed(key: str, model: str, wafers: int, tok_s: float, kind: Kind, source: str,
              generation: str, date: str, method: Method = "plain",
              spec: SpecCase | None = None, note: str = "") -> Figure:
        return Figure(key, model, "cs3", wafers, "bf16", "bf16", "decode", "user_tok_s", tok_s,
                      kind, source, method=method, generation=generation, date=date, spec=spec,
                      comparable=method != "unknown", note=note)

    launch, current = "Cerebras launch 2024-08", "Cerebras current (2025), unstated"
    unknown = "method not stated (probably speculative): flagged, outside the MAPE"
    # Cerebras names no draft: assumption, Llama 3.1 8B on one more wafer, gamma 4
    draft = SpecCase("draft_model", 4, draft="llama-3.1-8b", draft_chips=1,
                     alpha_source="assumption: ASSUMED_ALPHA; draft and gamma unpublished "
                     "(Llama 3.1 8B, gamma 4 assumed)")
    return [
        speed("cs3-8b-1800", "llama-3.1-8b", 1, 1_800, "fit", f"{CEREBRAS} launch 2024-08",
              launch, "2024-08"),
        speed("cs3-70b-450", "llama-3.1-70b", 4, 450, "fit", f"{CEREBRAS} launch 2024-08",
              launch, "2024-08"),
        speed("cs3-70b-2100", "llama-3.1-70b", 4, 2_100, "predict", f"{CEREBRAS} 2024-10-24; "
              "[2] The Register", "Cerebras 2024-10 update", "2024-10", "speculative", draft,
              note="speculative decoding (Cerebras says so) plus a software update the models "
              "do not carry"),
        speed("cs3-70b-2314", "llama-3.1-70b", 4, 2_314, "predict",
              "[2] Artificial Analysis via anintent.com", current, "2025", "unknown",
              note=f"Llama 3.3 70B; {unknown}"),
        speed("cs3-8b-2200", "llama-3.1-8b", 1, 2_200, "predict",
              "[2] Artificial Analysis via press", current, "2025", "unknown", note=unknown),
        speed("cs3-oss-3000", "gpt-oss-120b", 6, 3_000, "predict",
              "[2] press; docs.getpatter.com", current, "2025", "unknown",
              note=f"'up to' (a marketing maximum); {unknown}"),
        Figure("cs3-70b-ttft", "llama-3.1-70b", "cs3", 4, "bf16", "bf16", "ttft", "ttft_ms", 170,
               "predict", "[2] createaiagent.net (Artificial Analysis)", comparable=False,
               method="unknown", generation=current, date="2025",
               note="end-to-end API TTFT (network, queueing) for an assumed 1,000-token prompt; "
               "the model is the wafer's prefill alone"),
    ]


def figures() -> list[Figure]:
    """Every reference figure: H100 (NIM), the GPU throughput tables (MLPerf, TensorRT-LLM),
    Trainium2, CS-3."""
    from disagg.cluster.hardware.reference_throughput import throughput_figures

    return _h100() + throughput_figures() + _trainium() + _cs3()
