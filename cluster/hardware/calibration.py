"""Published speeds against what the performance models predict, with the error.

Each row names its source (shared/reference/calibration.md). Predictions are single-stream decode
tokens/s per user at a 1,000-token context: 1 / decode_step_time(batch 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time


@dataclass(frozen=True)
class Published:
    """A published decode speed for a model on a unit of ``chips`` chips or systems."""

    model: str
    hardware: str
    chips: int
    tokens_per_s: float
    source: str
    note: str = ""


PUBLISHED = (
    Published("llama-3.1-70b", "cs3", 4, 2_100, "[V] Cerebras blog 2024-10; [2] The Register",
              "the fit target"),
    Published("llama-3.1-70b", "cs3", 4, 2_314, "[2] Artificial Analysis via anintent.com",
              "Llama 3.3 70B, same shape"),
    Published("llama-3.1-8b", "cs3", 1, 2_200, "[2] Artificial Analysis via press"),
    Published("gpt-oss-120b", "cs3", 6, 3_000, "[2] press; docs.getpatter.com",
              "6 wafers hold 16-bit weights (assumption)"),
    Published("llama-3.1-70b", "h100", 8, 128, "[2] Artificial Analysis via The Register",
              "best H100 provider, TP8 assumed"),
    Published("llama-3.1-8b", "h100", 1, 242, "[2] Artificial Analysis via The Register",
              "best H100 provider, TP1 assumed"),
)


@dataclass(frozen=True)
class CalibrationRow:
    """One published figure, the model's prediction and the relative error."""

    published: Published
    predicted_tokens_per_s: float

    @property
    def error(self) -> float:
        return self.predicted_tokens_per_s / self.published.tokens_per_s - 1.0


def calibration_rows(context_tokens: int = 1_000) -> list[CalibrationRow]:
    """Every published figure against the catalog's prediction."""
    rows = []
    for p in PUBLISHED:
        step = decode_step_time(1, context_tokens, get_model(p.model), get_hardware(p.hardware),
                                p.chips)
        rows.append(CalibrationRow(p, 1.0 / step))
    return rows
