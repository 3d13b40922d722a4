"""The same disagg command at an older commit and at this tree, interleaved, whole process.

    python benchmarks/ab_commits.py --base d0aadf4 --rounds 4 -- \\
        run experiments/mooncake_conv.toml --engine virtual --no-live \\
        --set workload.start_s=0 --set workload.end_s=4000 --set experiment.duration_s=4000

The base commit's tree is extracted with ``git archive`` into a temporary folder laid out as the
``disagg`` package (nothing is installed: ``PYTHONPATH`` points at it) and the command runs there
with paths relative to that tree; "after" is this repository as installed. Rounds alternate
before / after so that the machine's load drifts cancel; each run is a child process timed whole
(start-up included; CPU and peak RSS from ``os.wait4``), both trees' bytecode compiled first.
An ``--out`` is added to every run (a fresh temporary folder, removed after). Prints a Markdown table: every round, the medians and the
ratio of medians (on a shared machine compare CPU, the steadier measure). Numbers in
docs/performance.md (block "speed-ab": ``python benchmarks/regen_docs.py --only speed-ab``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("cluster", "actors", "fabric", "policies", "experiments")
MAIN = ("import sys; from disagg.experiments.cli.main import main; "
        "sys.argv = ['disagg'] + sys.argv[1:]; sys.exit(main())")


def extract(commit: str, into: Path) -> Path:
    """The tree at ``commit`` as ``into/disagg`` (the package's root); that folder."""
    tree = into / "disagg"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--base: value {commit!r} is not a commit git can archive here: "
                         f"{archive.stderr.decode().strip()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def compile_bytecode(root: Path, python: Path | None = None) -> None:
    """Write the bytecode caches of the disagg tree at ``root`` for ``python`` (default: this
    one), as an installed package has them (pip compiles at install; with
    PYTHONDONTWRITEBYTECODE set, as in some shells and CI, every run would otherwise recompile
    its ~140 modules, ~0.15 s of each whole process)."""
    subprocess.run([str(python or sys.executable), "-m", "compileall", "-q", "-j", "0",
                    *(str(root / d) for d in PACKAGE_DIRS)], check=True,
                   stdout=subprocess.DEVNULL)


def run_once(cwd: Path, pythonpath: str | None, args: list[str], out: Path) -> dict[str, float]:
    """One whole-process run of ``disagg ARGS --out OUT`` in ``cwd``: wall s, CPU s, peak MiB."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", MAIN, *args, "--out", str(out)], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"a run in {cwd} failed: {err.strip().splitlines()[-1:]}")
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "mib": usage.ru_maxrss / 1024}


def table(base: str, rows: list[tuple[int, dict[str, float], dict[str, float], float]]) -> str:
    """The Markdown table of every round, then medians and the after/before ratio."""
    lines = [f"| round | before ({base}): wall s | CPU s | after (this tree): wall s | CPU s | "
             "peak MiB before / after | 1-min load |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r, b, a, load in rows:
        lines.append(f"| {r} | {b['wall']:.2f} | {b['cpu']:.2f} | {a['wall']:.2f} | "
                     f"{a['cpu']:.2f} | {b['mib']:.0f} / {a['mib']:.0f} | {load:.1f} |")
    med = {k: (statistics.median(b[k] for _, b, _, _ in rows),
               statistics.median(a[k] for _, _, a, _ in rows)) for k in ("wall", "cpu")}
    lines.append(f"| median | {med['wall'][0]:.2f} | {med['cpu'][0]:.2f} | {med['wall'][1]:.2f} | "
                 f"{med['cpu'][1]:.2f} | | |")
    lines.append(f"| after / before | | | {med['wall'][1] / med['wall'][0]:.3f} | "
                 f"{med['cpu'][1] / med['cpu'][0]:.3f} | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the older commit")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then the disagg command's args")
    ns = ap.parse_args()
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    if not args or ns.rounds < 1:
        ap.error("give --rounds >= 1 and the disagg command after --")
    with tempfile.TemporaryDirectory(prefix="disagg-ab-") as tmp:
        old = extract(ns.base, Path(tmp) / "base")
        compile_bytecode(old)
        compile_bytecode(REPO)
        rows = []
        for r in range(1, ns.rounds + 1):
            load = os.getloadavg()[0]
            b = run_once(old, str(old.parent), args, Path(tmp) / "out-before")
            a = run_once(REPO, None, args, Path(tmp) / "out-after")
            rows.append((r, b, a, load))
            print(f"round {r}: before {b['cpu']:.2f} CPU s, after {a['cpu']:.2f}",
                  file=sys.stderr, flush=True)
    print(f"`disagg {' '.join(args)}`, {ns.rounds} interleaved rounds, whole process:\n")
    print(table(ns.base, rows))


if __name__ == "__main__":
    main()
