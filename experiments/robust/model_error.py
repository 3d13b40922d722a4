"""The models' measured error as a relative capacity band, per hardware.

Source: the accuracy suite's table in docs/accuracy.md (a generated block, regenerated with the
models). A hardware's error is the mean absolute error of its **predicted** cases with plain
decoding (fitted cases are errors of a fit, not of a prediction; speculative cases measure the
assumed acceptance rate, which is a dimension of its own). Hardware without such a case takes the
MAPE over every predicted case (the table's bottom line). The band of a candidate is its capacity
x (1 +/- the largest error of the hardware it uses): an error of latency moves the capacity at
the SLO in roughly the same proportion, which is the approximation this band makes.
"""

from __future__ import annotations

import re
from pathlib import Path

from disagg.cluster.errors import ConfigError

ACCURACY_DOC = Path(__file__).resolve().parents[2] / "docs" / "accuracy.md"
_ROW = re.compile(r"^\| `[^`]+` \|.*? on \d+ x (\w+) [^|]*\| (\w+) \|[^|]*\|[^|]*\|[^|]*\| "
                  r"([+-]?[\d.]+) % \| (\w+) \|$")
_MAPE = re.compile(r"over predicted cases: ([\d.]+) %")


def hardware_errors(doc: Path = ACCURACY_DOC) -> tuple[dict[str, float], float]:
    """(relative error per hardware, the fallback for hardware without a predicted plain case),
    both as fractions, read from the accuracy table."""
    try:
        text = doc.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--robust: cannot read the models' error from {doc} ({e.strerror}); "
                          "allowed: set [robust] capacity_error") from None
    found = _MAPE.search(text)
    if found is None:
        raise ConfigError(f"--robust: {doc} has no 'over predicted cases: X %' line; allowed: "
                          "set [robust] capacity_error")
    per: dict[str, list[float]] = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m and m.group(2) == "plain" and m.group(4) == "predicted":
            per.setdefault(m.group(1), []).append(abs(float(m.group(3))) / 100)
    return {hw: sum(v) / len(v) for hw, v in per.items()}, float(found.group(1)) / 100


def capacity_error(hardware: set[str], override: float | None,
                   table: tuple[dict[str, float], float] | None = None) -> float:
    """The relative capacity error of a candidate using ``hardware``: ``override`` if given, else
    the largest per-hardware error (the fallback where a hardware has no case)."""
    if override is not None:
        return override
    per, fallback = table if table is not None else hardware_errors()
    return max((per.get(hw, fallback) for hw in hardware), default=fallback)
