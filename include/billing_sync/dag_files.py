"""Where the package's DAG files are, and `huntress-cw-billing-dags`, which copies them to a dags folder.

The wheel carries the DAG files as `billing_sync/dags/` (setup.py copies the project's `dags/`
there at build). Airflow parses only its dags folder, so a deployment copies them in once per
upgrade: `huntress-cw-billing-dags` (to `[core] dags_folder`) or `huntress-cw-billing-dags DIR`.
In the dev tree (an editable install) they are the work tree's `dags/`, where `make airflow`'s
dags folder already points.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "dags"
WORK_TREE = Path(__file__).resolve().parents[2] / "dags"


def dags_dir() -> Path:
    """The folder holding the DAG files: the wheel's, else the work tree's."""
    for folder in (PACKAGED, WORK_TREE):
        if any(folder.glob("*.py")):
            return folder
    raise FileNotFoundError(f"no DAG files in {PACKAGED} or {WORK_TREE}")


def dag_files() -> list[Path]:
    return sorted(p for p in dags_dir().glob("*.py") if p.name != "__init__.py")


def copy_dags(target: Path) -> list[Path]:
    """Copy every DAG file into `target` (made if missing), replacing older copies; the copies."""
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(src, target / src.name)) for src in dag_files()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="huntress-cw-billing-dags", description="Copy the billing sync's DAG files into a dags folder."
    )
    parser.add_argument("folder", nargs="?", help="the dags folder [Airflow's [core] dags_folder]")
    parser.add_argument("--print", action="store_true", help="print where the DAG files are; copy nothing")
    args = parser.parse_args(argv)
    if args.print:
        print(dags_dir())
        return 0
    if args.folder:
        target = Path(args.folder)
    else:
        from airflow.configuration import conf

        target = Path(conf.get("core", "dags_folder"))
    for copied in copy_dags(target):
        print(copied)
    return 0


if __name__ == "__main__":
    sys.exit(main())
