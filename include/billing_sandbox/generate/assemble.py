"""`generate()`: the cases built, then the Huntress and ConnectWise sections and `meta` assembled."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from . import real_world
from .builder import _Builder
from .cases import _plan
from .model import CATALOG, DEFAULTS, GENERATOR_VERSION, PROBLEMS, SHARES, _months_back, _Org, _ts
from .problems import _ProblemCases

# ---------------------------------------------------------------------------------------------
# Assembly


def generate(organizations: int, seed: int, **options: Any) -> dict[str, Any]:
    """A complete scenario (docs/contract.md §5 plus extensions) for `organizations` Huntress organizations."""
    opts = _options(organizations, options)
    b = _Builder(organizations, seed, opts)
    cases = _plan(b)
    builder = _ProblemCases(b)
    for case in cases:
        builder.build(case)
    assert len(b.orgs) == organizations, (len(b.orgs), organizations)
    scenario = {
        "huntress": _huntress(b),
        "connectwise": _connectwise(b),
        "meta": _meta(b),
    }
    return real_world.apply(scenario, seed) if opts["real_world"] else scenario


def _options(organizations: int, options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown option(s): {sorted(unknown)}")
    opts = {**DEFAULTS, **options}
    if isinstance(opts["billing_date"], date):
        opts["billing_date"] = opts["billing_date"].isoformat()
    date.fromisoformat(opts["billing_date"])  # ValueError when malformed
    checks = [
        (isinstance(organizations, int) and organizations >= 1, "organizations must be at least 1"),
        (isinstance(opts["months"], int) and 1 <= opts["months"] <= 36, "months must be 1..36"),
        (0 <= opts["change_share"] <= 1, "change_share must be between 0 and 1"),
        (1 <= opts["agreements_per_company"] <= 20, "agreements_per_company must be 1..20"),
        (
            isinstance(opts["rate_limit"], int) and opts["rate_limit"] >= 1,
            "rate_limit must be a positive integer",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    opts["clean"] = bool(opts["clean"])
    opts["real_world"] = bool(opts["real_world"])
    return opts


def _huntress(b: _Builder) -> dict[str, Any]:
    orgs = sorted(b.orgs, key=lambda o: o.id)
    return {
        "api_key": "hk_demo",
        "api_secret": "hs_demo",
        "rate_limit_per_minute": b.opts["rate_limit"],
        "rate_limit_window_s": 60,
        "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
        "organizations": [_org_record(o) for o in orgs],
        "invoices": _invoices(b, orgs),
    }


def _org_record(o: _Org) -> dict[str, Any]:
    usages: dict[str, Any] = {
        "edr": {"billable_agents_count": o.usage["edr"]},
        "sat": {"learners_count": o.usage["sat"]},
        "siem": {"billable_log_sources_count": o.usage["siem"]},
        "itdr": [],
    }
    if o.usage["itdr"]:
        tenant = f"{o.id:08x}-0000-4000-8000-{o.id:012x}"
        usages["itdr"].append(
            {
                "type": "microsoft",
                "identity_provider_tenant_id": tenant,
                "billable_identities_count": o.usage["itdr"],
                "total_identities_count": o.usage["itdr"] + o.id % 7,
            }
        )
    # agents_count counts every agent, billable or not (a few unresponsive/test machines).
    agents = o.usage["edr"] + (o.id % 4 if o.usage["edr"] else 0)
    return {
        "id": o.id,
        "name": o.name,
        "key": o.key,
        "created_at": o.created_at,
        "agents_count": agents,
        "actual_usages": usages,
    }


def _history(b: _Builder, org: _Org) -> list[dict[str, Any] | None]:
    """The organization's actual_usage on each invoice, oldest first (None: not on that invoice)."""
    rng, months = b.rng, b.months
    out: list[dict[str, Any] | None] = [None] * months
    out[-1] = org.line
    current = dict(org.previous)
    for k in range(months - 2, -1, -1):
        if k >= org.first_month:
            out[k] = dict(current)
        current = {p: max(0, v - _drift(rng, v)) if v else 0 for p, v in current.items()}
    return out


def _drift(rng: random.Random, value: int) -> int:
    """Month-over-month growth: most months flat, else a few percent either way."""
    if rng.random() < 0.55:
        return 0
    step = max(1, round(value * 0.04))
    return rng.randint(-step, step)


def _invoices(b: _Builder, orgs: list[_Org]) -> list[dict[str, Any]]:
    histories = {o.id: _history(b, o) for o in orgs}
    invoices = []
    line_id = 90000
    for k, billed in enumerate(b.billing_dates):
        lines = []
        for o in orgs:
            usage = histories[o.id][k]
            if usage is not None:
                line_id += 1
                lines.append({"id": line_id, "organization_id": o.id, "actual_usage": usage})
        invoices.append(_invoice(5001 + k, billed, lines))
    return invoices


_CENTS = {"edr": 300, "itdr": 200, "sat": 100, "siem": 500}


def _invoice(invoice_id: int, billed: date, lines: list[dict[str, Any]]) -> dict[str, Any]:
    def count(line: dict[str, Any], p: str) -> int:
        v = line["actual_usage"].get(p)
        return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**7 else 0

    return {
        "id": invoice_id,
        "created_at": _ts(billed, 6),
        "updated_at": _ts(billed, 6, 42),
        "status": "paid",
        "plan": "Huntress Partner",
        "currency_type": "usd",
        "period_start": _ts(_months_back(billed, 1)),
        "period_end": _ts(billed),
        "quantity": sum(count(line, "edr") for line in lines),
        "amount": sum(count(line, p) * c for line in lines for p, c in _CENTS.items()),
        "has_usage": bool(lines),
        "receipt": f"https://pay.stripe.com/invoice/acct_demomsp/invst_{invoice_id:08d}",
        "lines": lines,
    }


def _connectwise(b: _Builder) -> dict[str, Any]:
    return {
        "company_id": "demomsp",
        "public_key": "pub",
        "private_key": "priv",
        "client_id": "00000000-0000-0000-0000-000000000000",
        "companies": sorted(b.companies, key=lambda c: c["id"]),
        "catalog": [
            {
                "id": cid,
                "identifier": ident,
                "description": desc,
                "productClass": "NonInventory" if ident != "BLOCK-10HR" else "Service",
                "price": price,
                "cost": cost,
                "recurringFlag": ident != "BLOCK-10HR",
            }
            for cid, ident, desc, price, cost in CATALOG
        ],
        "agreements": b.agreements,
    }


def _meta(b: _Builder) -> dict[str, Any]:
    additions = sum(len(a["additions"]) for a in b.agreements)
    return {
        "generator": {"version": GENERATOR_VERSION, "seed": b.seed, "organizations": b.n, **b.opts},
        "billing_date": b.newest.isoformat(),
        "billing_dates": [d.isoformat() for d in b.billing_dates],
        "planted": b.planted,
        "shares": {
            "change_share": b.opts["change_share"],
            "problems": {
                code: {"per_organization": share, "minimum": len(variants), "variants": list(variants)}
                for code, (share, variants) in PROBLEMS.items()
            },
            "structure": {k: {"per_organization": s, "minimum": m} for k, (s, m) in SHARES.items()},
        },
        "counts": {
            "planted": {code: len(entries) for code, entries in b.planted.items()},
            "clean_keys": dict(b.keys),
            "organizations": len(b.orgs),
            "companies": len(b.companies),
            "agreements": len(b.agreements),
            "additions": additions,
            "invoice_lines": sum(1 for o in b.orgs if o.line is not None),
        },
        "distractors": b.distractors,
    }
