"""Named output-length distributions of reasoning models, each with the sources it rests on.

A preset is a lognormal (median, log-space sigma) clipped to [min, max] tokens. Reasoning
models emit their chain of thought before the answer, so a request's output runs to thousands
or tens of thousands of tokens. Published figures give maxima and averages, not whole
distributions: each preset says which of its numbers is published and which is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LengthPreset:
    """A named lognormal output-length distribution (tokens) and its sources."""

    median: float
    sigma: float
    min: int
    max: int
    source: str


PRESETS: dict[str, LengthPreset] = {
    # DeepSeek-R1 as MLPerf Inference v5.1 serves it (mlcommons.org/2025/09/deepseek-inference-5-1):
    # outputs capped at 20K tokens (published). DeepSeek-R1 paper (arXiv 2501.12948, Fig. 3):
    # the average response on its RL prompts grows to ~10K tokens (published, hard problems).
    # The median 4,000 and sigma 0.9 (mean ~6,000) for a mixed math/code/knowledge set are
    # assumptions between those two published figures.
    "reasoning_r1": LengthPreset(4_000, 0.9, 64, 20_000,
                                 "MLPerf Inference v5.1 DeepSeek-R1 (20K max output); "
                                 "DeepSeek-R1 paper Fig. 3 (~10K average on RL prompts); "
                                 "median 4,000 assumed"),
    # Hard reasoning (competition math, code): DeepSeek-R1 paper Fig. 3 (~10K average response,
    # published) as the median; MLPerf Inference v6.0 GPT-OSS accuracy set caps outputs at
    # 32,768 tokens (mlcommons.org/2026/03/mlperf-inference-gpt-oss, published); sigma 0.5 assumed.
    "reasoning_hard": LengthPreset(10_000, 0.5, 256, 32_768,
                                   "DeepSeek-R1 paper Fig. 3 (~10K average); MLPerf Inference "
                                   "v6.0 GPT-OSS (32,768 max output); sigma 0.5 assumed"),
}
"""Preset name -> distribution (``output_tokens = { kind = "preset", name = "..." }``)."""
