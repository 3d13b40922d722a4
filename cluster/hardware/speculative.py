"""Speculative decoding: tokens per step and the cost of a speculative step (pure math).

Each step, a drafter proposes ``gamma`` tokens per sequence and the target model verifies them in
one forward pass over gamma + 1 query tokens per sequence (the proposals plus the bonus token).
With a per-token acceptance rate alpha (each proposal accepted independently while all before it
were — Leviathan et al., "Fast Inference from Transformers via Speculative Decoding", ICML 2023),
the accepted proposals A follow a geometric law truncated at gamma:
P(A = a) = alpha^a (1 - alpha) for a < gamma, P(A = gamma) = alpha^gamma, and a step yields
A + 1 tokens, on average (1 - alpha^(gamma+1)) / (1 - alpha) (gamma + 1 when alpha = 1).

Step cost = verify + draft:
- verify: a decode step of the target with gamma + 1 query tokens per sequence
  (``perf.decode_step_times(query_tokens=gamma + 1)``): FLOPs grow with batch x (gamma + 1), the
  weights and KV are read once — so speculation is nearly free at batch 1 (memory bound) and
  costs more as the batch grows (compute bound);
- draft model (``method = "draft_model"``): gamma sequential decode steps of the draft model
  over the same contexts, on the draft's own hardware and chips (the target's unless given);
  with ``fused`` (NxD Inference's fused speculation: "the draft model and target model are
  fused into a single compiled model", aws-neuron-sdk nxd-inference feature guide), the draft
  loop runs inside the one compiled graph, so its steps pay no per-iteration host overhead
  (``step_overhead_s``): the speculative step pays it once, in the verify. The draft keeps the
  target's TP degree (the guide's draft config is a copy of the target's), so it still pays the
  per-layer collective latency;
- draft heads (``method = "draft_heads"``, EAGLE / Medusa / MTP): gamma sequential head passes,
  each ``head_step_fraction`` of a plain target decode step (default 0.05: an EAGLE head is one
  decoder layer plus the LM head, Li et al., "EAGLE", ICML 2024 — ~1/32 to 1/40 of a 32-40 layer
  target's layers, rounded up for the LM head; DeepSeek-V3's MTP module is one block likewise).
Seconds, tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from disagg.cluster.hardware.perf import decode_step_times
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec

DEFAULT_HEAD_STEP_FRACTION = 0.05  # EAGLE head pass / target decode step (see module docstring)


@dataclass(frozen=True)
class Speculation:
    """A unit's speculative decoding: ``gamma`` proposals per step by a draft model (``draft``
    on ``draft_hw`` x ``draft_chips``) or by draft heads (``head_step_fraction`` of a target
    step per proposal); acceptance rate ``alpha`` by SLO class (``default_alpha`` otherwise)."""

    method: Literal["draft_model", "draft_heads"]
    gamma: int
    default_alpha: float
    alpha_by_class: tuple[tuple[str, float], ...] = ()
    draft: ModelSpec | None = None
    draft_hw: HardwareProfile | None = None
    draft_chips: int = 1
    head_step_fraction: float = DEFAULT_HEAD_STEP_FRACTION
    fused: bool = False

    def alpha(self, slo_class: str) -> float:
        """The acceptance rate of a request of ``slo_class``."""
        return dict(self.alpha_by_class).get(slo_class, self.default_alpha)


def expected_tokens_per_step(alpha: float, gamma: int) -> float:
    """Mean tokens a speculative step yields per sequence: (1 - alpha^(gamma+1)) / (1 - alpha)."""
    if alpha >= 1.0:
        return float(gamma + 1)
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def draw_tokens_per_step(rng: np.random.Generator, alpha: float, gamma: int,
                         steps: int) -> NDArray[np.int64]:
    """``steps`` independent draws of the tokens a step yields for one sequence (1..gamma+1)."""
    if alpha >= 1.0:
        return np.full(steps, gamma + 1, dtype=np.int64)
    if alpha <= 0.0:
        return np.ones(steps, dtype=np.int64)
    accepted = rng.geometric(1.0 - alpha, size=steps) - 1  # proposals before the first rejection
    return np.minimum(accepted, gamma).astype(np.int64) + 1


def spec_step_times(batch_size: ArrayLike, context_tokens: ArrayLike, spec: Speculation,
                    model: ModelSpec, hw: HardwareProfile, chips: int) -> NDArray[np.float64]:
    """Seconds per speculative step (draft + verify) of ``batch_size`` sequences holding
    ``context_tokens`` tokens in all, vectorised like ``perf.decode_step_times``."""
    verify = decode_step_times(batch_size, context_tokens, model, hw, chips, spec.gamma + 1)
    if spec.method == "draft_heads":
        plain = decode_step_times(batch_size, context_tokens, model, hw, chips)
        return verify + spec.gamma * spec.head_step_fraction * plain
    assert spec.draft is not None, "a draft_model speculation names its draft model"
    draft_hw = hw if spec.draft_hw is None else spec.draft_hw
    draft = decode_step_times(batch_size, context_tokens, spec.draft, draft_hw, spec.draft_chips)
    if spec.fused:
        draft = draft - draft_hw.step_overhead_s
    return verify + spec.gamma * draft
