"""The config model of a trace file: its path (resolved against the experiment file's folder)
and its format or columns; :meth:`TraceSource.load` parses it (``traces.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from disagg.cluster.workload.traces import (
    FORMATS,
    Trace,
    TraceColumns,
    TimestampUnit,
    read_trace,
)


def resolve_trace_path(value: str, info: ValidationInfo) -> str:
    """A config's trace ``path`` made absolute (a relative one against the folder of the
    experiment file, ``base_dir`` in the validation context); ValueError if no such file."""
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.is_file():
        raise ValueError(f"no such trace file ({path.resolve()})")
    return str(path.resolve())


class TraceSource(BaseModel):
    """A trace file and how to read it: a named format, or ``csv`` with explicit columns.

    A relative ``path`` is resolved against the folder of the experiment file that names it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    path: str = Field(min_length=1, description="trace file; relative to the experiment file")
    format: Literal["azure", "burstgpt", "mooncake", "csv"] = Field(
        "azure", description="azure / burstgpt CSV, mooncake JSONL, or csv with the columns below"
    )
    timestamp_column: str | None = Field(None, description="overrides the format's time column")
    prompt_column: str | None = Field(None, description="overrides the format's prompt column")
    output_column: str | None = Field(None, description="overrides the format's output column")
    timestamp_unit: TimestampUnit | None = Field(
        None, description="datetime (YYYY-MM-DD HH:MM:SS.f), s or ms; overrides the format's"
    )

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, value: str, info: ValidationInfo) -> str:
        return resolve_trace_path(value, info)

    @model_validator(mode="after")
    def _columns_given(self) -> TraceSource:
        if self.format == "csv":
            missing = [n for n in ("timestamp_column", "prompt_column", "output_column",
                                   "timestamp_unit") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"format 'csv' needs {', '.join(missing)}")
        return self

    def columns(self) -> TraceColumns:
        """The column names and timestamp unit after the format's defaults."""
        base = FORMATS.get(self.format, TraceColumns("", "", "", "s"))
        return TraceColumns(
            self.timestamp_column or base.timestamp, self.prompt_column or base.prompt_tokens,
            self.output_column or base.output_tokens, self.timestamp_unit or base.unit,
            base.hashes,
        )

    def load(self) -> Trace:
        """The parsed trace (cached); ConfigError with file and line on bad input."""
        return read_trace(self.path, self.columns(), jsonl=self.format == "mooncake")
