"""Scenario JSON text (`dumps`) and the command line (`python -m billing_sandbox generate`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .assemble import generate
from .model import DEFAULTS

# ---------------------------------------------------------------------------------------------
# Output


def dumps(scenario: dict[str, Any], indent: int = 1) -> str:
    """Scenario JSON text. indent 0 = one line; otherwise records with no nested records stay on one line."""
    if indent <= 0:
        return json.dumps(scenario, ensure_ascii=False, separators=(",", ":")) + "\n"
    return _pretty(scenario, 0, indent) + "\n"


def _flat(value: Any) -> bool:
    """No list of records anywhere inside: short enough to read on one line."""
    if isinstance(value, dict):
        return all(_flat(v) for v in value.values())
    if isinstance(value, list):
        return all(not isinstance(v, dict | list) for v in value)
    return True


def _inline(value: Any, level: int) -> bool:
    if not isinstance(value, dict | list):
        return True
    if level < 2:
        return False
    return _flat(value) or (isinstance(value, dict) and len(json.dumps(value, ensure_ascii=False)) <= 320)


def _pretty(value: Any, level: int, indent: int) -> str:
    if _inline(value, level):
        return json.dumps(value, ensure_ascii=False)
    pad, end = " " * (indent * (level + 1)), " " * (indent * level)
    if isinstance(value, dict):
        body = [
            f"{pad}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, level + 1, indent)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(body) + "\n" + end + "}" if body else "{}"
    body = [pad + _pretty(v, level + 1, indent) for v in value]
    return "[\n" + ",\n".join(body) + "\n" + end + "]" if body else "[]"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m billing_sandbox generate",
        description="Write a realistic sandbox scenario with a documented share of planted problems.",
    )
    p.add_argument("--organizations", type=int, required=True, help="number of Huntress organizations")
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same file) [42]")
    p.add_argument("--out", default="-", help="output file, '-' for stdout [-]")
    for name, type_, text in (
        ("billing_date", str, "newest invoice's billing date, YYYY-MM-DD (created that day 06:00Z)"),
        ("months", int, "monthly invoices ending at the billing date"),
        ("change_share", float, "share of clean keys whose ConnectWise quantity differs from the usage"),
        ("agreements_per_company", float, "mean agreements per company with Huntress"),
        ("rate_limit", int, "Huntress requests per minute"),
    ):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=type_, default=DEFAULTS[name], help=f"{text} [%(default)s]")
    p.add_argument("--clean", action="store_true", help="plant no problems (traps stay)")
    p.add_argument(
        "--real-world",
        action="store_true",
        help="managed accounts, missing dates and products, a voided invoice (real_world.py)",
    )
    p.add_argument("--compact", action="store_true", help="one-line JSON (faster, smaller)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    options = {name: getattr(args, name) for name in DEFAULTS}  # each generate() option has its flag
    try:
        scenario = generate(args.organizations, args.seed, **options)
    except ValueError as exc:
        parser.error(str(exc))
    text = dumps(scenario, indent=0 if args.compact else 1)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    counts = scenario["meta"]["counts"]
    planted = ", ".join(f"{k}={v}" for k, v in counts["planted"].items() if v)
    print(
        f"wrote {args.out}: {counts['organizations']} organizations, {counts['companies']} companies, "
        f"{counts['agreements']} agreements, {counts['additions']} additions; planted: {planted or 'none'}",
        file=sys.stderr,
    )
    return 0
