"""Generator: determinism, the shipped demo, the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from billing_sandbox import generate as gen
from tests.sandbox.generate import DEMO

# --------------------------------------------------------------------------------------------
# Determinism and the shipped demo


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a, b = gen.dumps(gen.generate(40, 42)), gen.dumps(gen.generate(40, 42))
    assert a == b
    assert gen.dumps(gen.generate(40, 43)) != a


def test_shipped_demo_equals_generator_output() -> None:
    text = DEMO.read_text(encoding="utf-8")
    shipped = json.loads(text)
    recorded = dict(shipped["meta"]["generator"])
    assert recorded.pop("version") == gen.GENERATOR_VERSION, (
        "regenerate scenarios/demo.json (docs/scenarios.md)"
    )
    assert (recorded["organizations"], recorded["seed"], recorded["billing_date"], recorded["months"]) == (
        40,
        42,
        "2026-11-01",
        3,
    )
    n, seed = recorded.pop("organizations"), recorded.pop("seed")
    assert text == gen.dumps(gen.generate(n, seed, **recorded)), "regenerate scenarios/demo.json"


def test_main_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    assert gen.main(["--organizations", "40", "--seed", "42", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == gen.dumps(gen.generate(40, 42))
    compact = tmp_path / "c.json"
    gen.main(
        [
            "--organizations",
            "12",
            "--seed",
            "5",
            "--out",
            str(compact),
            "--compact",
            "--months",
            "2",
            "--change-share",
            "0.1",
            "--agreements-per-company",
            "3",
            "--rate-limit",
            "30",
            "--clean",
            "--billing-date",
            "2026-06-15",
        ]
    )
    data = json.loads(compact.read_text(encoding="utf-8"))
    assert data == gen.generate(
        12,
        5,
        months=2,
        change_share=0.1,
        agreements_per_company=3,
        rate_limit=30,
        clean=True,
        billing_date="2026-06-15",
    )
    assert data["huntress"]["rate_limit_per_minute"] == 30


def test_cli_subcommand(tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "billing_sandbox",
            "generate",
            "--organizations",
            "8",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == gen.generate(8, 3)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        gen.generate(10, 1, months=0)
    with pytest.raises(ValueError):
        gen.generate(10, 1, change_share=1.5)
    with pytest.raises(ValueError):
        gen.generate(10, 1, billing_date="2026-13-01")
    with pytest.raises(TypeError):
        gen.generate(10, 1, colour="blue")
    with pytest.raises(SystemExit) as exc:
        gen.main(["--organizations", "0", "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
