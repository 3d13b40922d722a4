"""Session-structured traces: agentic Mooncake-style JSONL, one call per line.

The fields follow the agentic Mooncake rows NVIDIA Dynamo's replay reads (``dynamo_data_gen``
``AgenticMooncakeRow``): ``session_id`` groups a task's calls in file order; ``input_length``
is the call's whole prompt (context so far + new tokens), ``output_length`` its output,
``hash_ids`` its 512-token prefix blocks (optional); the first call of a session starts at
``timestamp`` (ms); every later call starts ``delay`` ms (plus ``tool_wait_ms``, if given)
after the previous call of its session *finished*. Rows without a ``session_id`` are
one-call tasks. Bad input raises :class:`ConfigError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from disagg.cluster.errors import ConfigError
from disagg.cluster.workload.trace_source import resolve_trace_path


@dataclass(frozen=True)
class CallRow:
    """One call of a recorded session: prompt and output tokens, its prefix-block hash ids
    and the delay (s) after the previous call's end (0 for a session's first call)."""

    prompt_tokens: int
    output_tokens: int
    hashes: tuple[int, ...]
    delay_s: float


@dataclass(frozen=True)
class Session:
    """A recorded task: when its first call started (s, trace clock) and its calls in order."""

    session_id: str
    start_s: float
    calls: tuple[CallRow, ...]


class SessionTrace(BaseModel):
    """An agentic Mooncake JSONL file (``path`` relative to the experiment file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    path: str = Field(min_length=1, description="JSONL trace; relative to the experiment file")

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, value: str, info: ValidationInfo) -> str:
        return resolve_trace_path(value, info)

    def load(self) -> tuple[Session, ...]:
        """The sessions in order of their first call (ties: file order)."""
        p = Path(self.path)
        st = p.stat()
        return _read(str(p), st.st_size, st.st_mtime_ns)


def _number(row: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = row.get(key, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: field {key!r}: value {value!r} must be a number >= 0")
    return float(value)


def _call(row: dict[str, Any], where: str, first: bool) -> CallRow:
    prompt = int(_number(row, "input_length", where))
    output = int(_number(row, "output_length", where))
    if prompt < 1 or output < 1:
        raise ConfigError(f"{where}: input_length and output_length must be >= 1")
    hashes = row.get("hash_ids") or []
    if not isinstance(hashes, list) or not all(isinstance(h, int) for h in hashes):
        raise ConfigError(f"{where}: field 'hash_ids': value must be a list of integers")
    delay_ms = 0.0 if first else (_number(row, "delay", where, 0.0)
                                  + _number(row, "tool_wait_ms", where, 0.0))
    return CallRow(prompt, output, tuple(hashes), delay_ms / 1e3)


@lru_cache(maxsize=16)
def _read(path: str, size: int, mtime_ns: int) -> tuple[Session, ...]:
    starts: dict[str, float] = {}
    calls: dict[str, list[CallRow]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: not JSON ({e.msg})") from e
            sid = str(row.get("session_id", f"row-{n}"))
            first = sid not in calls
            if first:
                starts[sid] = _number(row, "timestamp", where, 0.0) / 1e3
                calls[sid] = []
            calls[sid].append(_call(row, where, first))
    if not calls:
        raise ConfigError(f"{path}: no sessions (the file has no rows)")
    order = sorted(calls, key=lambda s: starts[s])  # stable: file order breaks ties
    return tuple(Session(s, starts[s], tuple(calls[s])) for s in order)
