"""Merge the ``results.csv`` of several ``evaluate.py`` runs into one Markdown table.

    python scripts/merge_results.py --out docs/results/x.md --title "..." \
        RUN_DIR[:explainer=Row name,...] ...

Each argument is an evaluate run dir, optionally followed by the rows to keep and their
names in the merged table (all rows, under their own names, when omitted). The evaluate
commands (the first line of each ``results.md``) are listed under the table, so the file
says how it was made.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
from pathlib import Path

from explainbench.utils.markdown import markdown_table


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_source(arg: str) -> tuple[Path, dict[str, str] | None]:
    run_dir, _, selection = arg.partition(":")
    if not selection:
        return Path(run_dir), None
    rows = dict(item.split("=", 1) for item in selection.split(","))
    return Path(run_dir), rows


def read_rows(run_dir: Path, rename: dict[str, str] | None) -> list[dict[str, str]]:
    path = run_dir / "results.csv"
    if not path.is_file():
        raise SystemExit(
            f"No results.csv in {run_dir}: run evaluate.py with hydra.run.dir={run_dir}"
        )
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rename is None:
        return rows
    known = {row["explainer"] for row in rows}
    missing = set(rename) - known
    if missing:
        raise SystemExit(f"{path} has no row {sorted(missing)} (rows: {sorted(known)})")
    picked = [dict(row) for row in rows if row["explainer"] in rename]
    for row in picked:
        row["explainer"] = rename[row["explainer"]]
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sources", nargs="+", help="RUN_DIR[:explainer=Row name,...]")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="Explanation benchmark")
    parser.add_argument("--made-by", default="", help="how the runs were made (above the commands)")
    args = parser.parse_args()

    rows, commands = [], []
    for source in args.sources:
        run_dir, rename = parse_source(source)
        rows += read_rows(run_dir, rename)
        md = run_dir / "results.md"
        if md.is_file():
            commands.append(md.read_text().splitlines()[0].strip("`"))
    columns = [c for c in rows[0] if c != "explainer"]
    for row in rows[1:]:
        columns += [c for c in row if c not in columns and c != "explainer"]

    table = [[row["explainer"], *(row.get(c, "") for c in columns)] for row in rows]
    align = ["left"] + ["right"] * len(columns)
    lines = [f"# {args.title}", "", *markdown_table(["explainer", *columns], table, align)]
    lines += ["", f"Machine: {cpu_name()}, {os.cpu_count()} cores. Made by:", ""]
    if args.made_by:
        lines += [f"    {args.made_by}"]
    lines += [f"    {command}" for command in dict.fromkeys(commands)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
