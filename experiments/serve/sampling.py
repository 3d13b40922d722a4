"""vLLM's sampling-parameter checks and stop conditions, applied to ``disagg serve``'s synthetic
output text (docs/serve.md, "vLLM behaviour").

The bounds and messages are vLLM's ``SamplingParams._verify_args``: a request outside them is a
400 naming the parameter. Stops act on the synthetic text only: output token ``i`` is the word
``WORDS[i mod 16]`` (token id ``i mod 16``), so a ``stop`` string or ``stop_token_ids`` entry cuts
the output exactly where that text or id first appears (from ``min_tokens`` on); the emulated
request then generates that many tokens, the last being the stopping one (vLLM counts it in
``completion_tokens`` and leaves the stop text out of the reply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from disagg.experiments.serve.protocol import WORDS, ApiError, Generation, token_text

MAX_N = 128  # vLLM's VLLM_MAX_N_SEQUENCES default would allow more; this caps the fan-out


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, param=param)


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{name} must be a number, got {value!r}.", name)
    return float(value)


def check_sampling(body: dict[str, Any]) -> None:
    """Raise :class:`ApiError` (400) for a sampling parameter vLLM 0.32 refuses."""
    t = _number(body, "temperature", 1.0)
    if not math.isfinite(t):
        raise _bad(f"temperature must be a finite number, got {t}.", "temperature")
    if t < 0.0:
        raise _bad(f"temperature must be non-negative, got {t}.", "temperature")
    if t > 2.0:
        raise _bad(f"temperature must be in [0, 2], got {t}.", "temperature")
    top_p = _number(body, "top_p", 1.0)
    if not 0.0 < top_p <= 1.0:
        raise _bad(f"top_p must be in (0, 1], got {top_p}.", "top_p")
    top_k = _number(body, "top_k", 0)
    if top_k < -1 or top_k != int(top_k):
        raise _bad(f"top_k must be 0 (disable), or at least 1, got {body.get('top_k')}.",
                   "top_k")
    min_p = _number(body, "min_p", 0.0)
    if not 0.0 <= min_p <= 1.0:
        raise _bad(f"min_p must be in [0, 1], got {min_p}.", "min_p")
    for name in ("presence_penalty", "frequency_penalty"):
        v = _number(body, name, 0.0)
        if not -2.0 <= v <= 2.0:
            raise _bad(f"{name} must be in [-2, 2], got {v}.", name)
    rep = _number(body, "repetition_penalty", 1.0)
    if not math.isfinite(rep) or rep <= 0.0:
        raise _bad(f"repetition_penalty must be greater than zero, got {rep}.",
                   "repetition_penalty")
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or n < 1 or n > MAX_N):
        raise _bad(f"n must be an int in [1, {MAX_N}], got {n!r}.", "n")


@dataclass(frozen=True)
class StopPoint:
    """Where the output ends: ``tokens`` generated, the reply's text length (characters) and
    vLLM's ``finish_reason`` / ``stop_reason`` (None: no stop applied)."""

    tokens: int
    text_chars: int | None  # None: the whole text of ``tokens`` tokens
    stop_reason: str | int | None


def stop_list(value: Any) -> list[str]:
    """``stop`` as a list (a string or a list of strings); empty strings are refused."""
    stops = [value] if isinstance(value, str) else list(value or [])
    if not all(isinstance(s, str) for s in stops):
        raise _bad(f"stop must be a string or a list of strings, got {value!r}.", "stop")
    if any(not s for s in stops):
        raise _bad("stop cannot contain an empty string.", "stop")
    return stops


def token_id(index: int) -> int:
    """Output token ``index``'s synthetic id (its word's index in ``WORDS``)."""
    return index % len(WORDS)


def find_stop(stops: list[str], stop_ids: list[int], max_tokens: int,
              min_tokens: int = 0) -> StopPoint:
    """The first token (from ``min_tokens`` on) whose text completes a stop string or whose id is
    a stop id; else all ``max_tokens``. The synthetic text repeats every 16 tokens, so looking
    that far past ``min_tokens`` and the longest stop string suffices."""
    ids = set(stop_ids)
    longest = max((len(s) for s in stops), default=0)
    horizon = min(max_tokens, min_tokens + len(WORDS) + longest + 1)
    text = ""
    for k in range(horizon):
        before = len(text)
        text += token_text(k)
        if k + 1 <= min_tokens:
            continue
        if token_id(k) in ids:
            return StopPoint(k + 1, before, token_id(k))
        window_from = max(0, before - longest)
        hits = [(text.find(s, window_from), s) for s in stops if s in text[window_from:]]
        if hits:
            at, s = min(hits)
            return StopPoint(k + 1, at, s)
    return StopPoint(max_tokens, None, None)


def _int_list(value: Any, name: str) -> list[int]:
    ids = list(value or [])
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise _bad(f"{name} must contain only integers, got {value!r}.", name)
    return ids


def apply_stops(gen: Generation, body: dict[str, Any]) -> Generation:
    """``gen`` cut at its first stop (``stop``, ``stop_token_ids``, from ``min_tokens`` on):
    fewer output tokens, the reply's text cut before the stop, ``finish_reason`` ``stop``."""
    stops = stop_list(body.get("stop"))
    ids = _int_list(body.get("stop_token_ids"), "stop_token_ids")
    min_tokens = body.get("min_tokens") or 0
    if not isinstance(min_tokens, int) or min_tokens < 0:
        raise _bad(f"min_tokens must be greater than or equal to 0, got {min_tokens}.",
                   "min_tokens")
    if min_tokens > gen.output_tokens:
        raise _bad(f"min_tokens must be less than or equal to max_tokens={gen.output_tokens}, "
                   f"got {min_tokens}.", "min_tokens")
    point = find_stop(stops, ids, gen.output_tokens, min_tokens)
    if point.stop_reason is None:
        return gen
    return replace(gen, output_tokens=point.tokens, text_chars=point.text_chars,
                   stop_reason=point.stop_reason, finish_reason="stop")
