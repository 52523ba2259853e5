"""Seeded, realistic sandbox scenarios: `python -m billing_sandbox generate --organizations N --seed S`.

`generate()` is pure: the same organizations, seed and options give the same scenario, byte for byte
once written with `dumps()`. The data looks like an MSP's books: Huntress organizations with a few
products each, ConnectWise companies with several agreements (managed services, security bundles,
block time, projects, cancelled and expired ones) carrying Huntress and non-Huntress additions.

On top of that clean base it plants a documented share of every problem the sync must quarantine
(docs/contract.md §3, all but `changed_since_read` and `push_rejected`, which need a live server) and a few
traps that must *not* become problems. `meta.planted` lists every planted key; docs/scenarios.md
explains each variant and the shares.

The modules, lower ones first: `model` (what is planted and how often, the catalog, dates, the
planning records) and `names`; `builder` (ids, names, companies, organizations, usage); `layout`
(agreements and additions); `cases` (the plan, clean cases); `problems` (planted problems);
`assemble` (`generate()`); `real_world` (the real APIs' shapes, `real_world=True`); `output`
(`dumps()`, the command line).
"""

from billing_sandbox.generate.assemble import generate
from billing_sandbox.generate.model import (
    CATALOG,
    DEFAULTS,
    GENERATOR_VERSION,
    HUNTRESS_ITEMS,
    PROBLEMS,
    PRODUCTS,
    SHARES,
)
from billing_sandbox.generate.names import fold
from billing_sandbox.generate.output import dumps, main

__all__ = [
    "CATALOG",
    "DEFAULTS",
    "GENERATOR_VERSION",
    "HUNTRESS_ITEMS",
    "PROBLEMS",
    "PRODUCTS",
    "SHARES",
    "dumps",
    "fold",
    "generate",
    "main",
]
