"""The newest run's staged frames, shared by the pages' queries.

Its Huntress organizations and ConnectWise companies, company names and cards, and the small value
helpers the pages read them with.

Everything is one tenant's: each function that reads rows takes the page's `tenant` (keyword, no
default, so no caller can forget it and show another tenant's rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import pandas as pd
from sqlalchemy.engine import Engine

from billing_sync import store


class Company(TypedDict):
    """A ConnectWise company as the pages name it."""

    id: int
    name: str


class CompanyCard(Company):
    """A staged ConnectWise company as the pages show it ("" for a value the run did not stage)."""

    identifier: str


@dataclass
class Staged:
    """The newest run's staged Huntress organizations and ConnectWise companies."""

    run_id: str | None
    organizations: pd.DataFrame
    companies: pd.DataFrame

    def company_names(self) -> dict[int, str]:
        return _company_names(self.companies)

    def company_ids(self) -> set[int]:
        return {int(i) for i in self.companies["company_id"].dropna()}

    def organization_ids(self) -> set[int]:
        return {int(i) for i in self.organizations["organization_id"].dropna()}

    def company_cards(self) -> dict[int, CompanyCard]:
        """Each staged company as the pages show it: id, name, identifier (first row of an id wins)."""
        c = self.companies.dropna(subset=["company_id"]).drop_duplicates("company_id")
        return {
            int(i): {"id": int(i), "name": text(n), "identifier": text(k)}
            for i, n, k in zip(c["company_id"], c["name"], c["identifier"], strict=True)
        }


def staged(engine: Engine, *, tenant: str) -> Staged:
    """Frames of the newest run that staged organizations (a failed early run stages nothing)."""
    run_id = store.newest_staged_run(engine, "organizations", tenant=tenant)
    if run_id is None:
        return Staged(
            None,
            pd.DataFrame(columns=["organization_id", "name", "key"]),
            pd.DataFrame(columns=["company_id", "identifier", "name"]),
        )
    return Staged(
        run_id,
        store.read_frame(engine, run_id, "organizations", tenant=tenant),
        store.read_frame(engine, run_id, "companies", tenant=tenant),
    )


def company_names(engine: Engine, *, tenant: str) -> dict[int, str]:
    """`staged(engine).company_names()` without reading the organizations."""
    run_id = store.newest_staged_run(engine, "organizations", tenant=tenant)
    if run_id is None:
        return {}
    return _company_names(store.read_frame(engine, run_id, "companies", tenant=tenant))


def _company_names(companies: pd.DataFrame) -> dict[int, str]:
    c = companies.dropna(subset=["company_id"])
    return {int(i): text(n) for i, n in zip(c["company_id"], c["name"], strict=True)}


def candidate_ids(value: Any) -> list[int]:
    """`candidate_company_ids` of a match ("20,21"): the ids, in order; none for NA."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return []
    return [int(c) for c in str(value).split(",") if c.strip().isdigit()]


def card(cards: Mapping[int, CompanyCard], company_id: int) -> CompanyCard:
    """The company's card from `Staged.company_cards`, or one with its id only (not staged)."""
    return cards.get(company_id) or {"id": company_id, "name": "", "identifier": ""}


def text(value: Any) -> str:
    """A frame's value as the pages print it: "" for None and NA."""
    return (
        "" if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)) else str(value)
    )
