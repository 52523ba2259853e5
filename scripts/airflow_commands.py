"""`airflow <args>` for each argument list given, one after another in this one interpreter.

Every `airflow` process spends seconds of CPU importing Airflow before it does anything. Commands
that run back to back (one trigger per tenant; serialize, create a backfill, unpause) pay that once
here. Each list goes through `airflow.__main__.main`, as the `airflow` command runs it; the first
that fails ends the run with its exit status.

    python scripts/airflow_commands.py '[["dags", "reserialize"], ["dags", "unpause", "a_dag"]]'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PATH = Path(__file__).resolve()


def command(python: str, argvs: list[list[str]]) -> list[str]:
    """The command line that runs `argvs` with the interpreter `python`."""
    return [python, str(PATH), json.dumps(argvs)]


def main(argvs: list[list[str]]) -> None:
    from airflow.__main__ import main as airflow

    for argv in argvs:
        sys.argv = ["airflow", *argv]
        airflow()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
