"""Issue 25 item 4, the other half of tests/test_docs_stamps.py: a table of measured figures in
README.md or docs/*.md lives inside a generated block (so a command regenerates it and its stamp
says with which code and models). This finds the tables outside blocks that look measured — a
header or first column naming a measured quantity (latency, throughput, attainment, memory, lag, error...) over
numeric cells — so a hand-typed result table cannot slip back in."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- BEGIN generated:([\w-]+) -->\n.*?<!-- END generated:\1 -->", re.S)
MEASURED = re.compile(r"\b(ms|req/s|attainment|tok/s|MiB|MB|wall|lag|TTFT|TPOT|ITL|goodput|"
                      r"throughput|err|error|latency|RSS|CPU|capacity|transfers/s)\b", re.I)
# Tables that match the pattern but hold no measurement: (doc, header), each with why.
NOT_MEASURED = {
    ("docs/reliability.md", "| case | what happens | exit |"),  # exit codes of error cases
}
NUMBER = re.compile(r"^[-+−×x~≈]?\s*[\d,]+(\.\d+)?\s*(%|ms|s|MB|MiB|GB)?$")


def _numeric(cell: str) -> bool:
    parts = [p.strip().strip("*") for p in cell.split("/")]
    return all(NUMBER.match(p) for p in parts if p) and any(parts)


def measured_tables(text: str) -> list[tuple[int, str]]:
    """(line, header) of every table outside generated blocks that looks measured."""
    lines = BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text).split("\n")
    found, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].startswith("|"):
            j += 1
        rows = [row.strip().strip("|").split("|") for row in lines[i + 2:j]]
        labels = " ".join([lines[i]] + [r[0] for r in rows])  # header and first column
        if MEASURED.search(labels) and sum(_numeric(c) for r in rows for c in r) >= 3:
            found.append((i + 1, lines[i]))
        i = j
    return found


def test_no_measured_table_outside_a_generated_block() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    stray = [f"{d.relative_to(REPO)}:{line}: {head[:80]}"
             for d in docs for line, head in measured_tables(d.read_text(encoding="utf-8"))
             if (str(d.relative_to(REPO)), head) not in NOT_MEASURED]
    assert stray == [], "measured tables typed in by hand (put them in a generated block):\n" + \
        "\n".join(stray)


def test_the_detector_finds_a_hand_typed_result_and_ignores_blocks_and_inputs() -> None:
    typed = ("| cluster | TTFT p50 ms | goodput req/s |\n|---|---|---|\n| a | 12.5 | 3.1 |\n"
             "| b | 1,250 / 9.0 | +3.1 % |\n")
    inputs = "| hardware | price per chip-hour | source |\n|---|---|---|\n| H100 | $4.92 | p5 |\n"
    block = f"<!-- BEGIN generated:x -->\n{typed}<!-- END generated:x -->\n"
    assert [line for line, _ in measured_tables(typed)] == [1]
    assert measured_tables(block) == [] and measured_tables(inputs) == []
