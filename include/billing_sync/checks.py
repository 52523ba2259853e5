"""Great Expectations (GX Core 1.x) suites for the extracted frames, and failed rows → issues.

Each suite runs in an ephemeral context with the COMPLETE result format, so every failed
expectation names the exact rows (`unexpected_index_list`). Those rows get an `issue` text: the
check in plain words (`Check.says`); reconciliation quarantines them. GX is imported only when a check runs: it costs
seconds to import and must never slow the DAG file's parse.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NotRequired, TypedDict

import pandas as pd

from .frames import MAX_USAGE

if TYPE_CHECKING:  # GX is imported only when a check runs (see above)
    from great_expectations.core import ExpectationSuiteValidationResult

USAGE_REGEX = rf"^(0|[1-9][0-9]{{0,{len(str(MAX_USAGE)) - 2}}}|{MAX_USAGE})$"
# A count, or JSON null: null, like an absent product, is no error by itself. Reconcile decides
# (0 where the company has no live addition for the product, invalid_usage where it has one).
USAGE_OR_NULL_REGEX = USAGE_REGEX.replace("^(", "^(null|", 1)


@dataclass(frozen=True)
class Check:
    """One expectation: GX class name, its kwargs, and the words a billing clerk reads."""

    expectation: str
    kwargs: dict[str, str | int | list[str]]  # column(s), regex, value set, bounds
    says: str


class ExpectationResult(TypedDict):
    """One check's result in a suite's validation result (validation.json)."""

    expectation: str  # the GX class name in snake case
    kwargs: dict[str, str | int | list[str]]
    says: str
    success: bool
    unexpected_count: int
    unexpected_rows: list[int]  # positions of the failed rows, at most 1000


class SuiteResult(TypedDict):
    """A suite's validation result, as validation.json keeps it."""

    suite: str
    success: bool
    evaluated: int  # checks run
    rows: NotRequired[int]  # absent for an empty frame, where no check ran
    results: list[ExpectationResult]


def usage_checks(products: Iterable[str]) -> list[Check]:
    return [
        Check(
            "ExpectColumnValuesToNotBeNull", {"column": "organization_id"}, "the line has an organization id"
        ),
        Check(
            "ExpectColumnValuesToMatchRegex",
            {"column": "raw_quantity", "regex": USAGE_OR_NULL_REGEX},
            f"the usage count, unless absent or null, is a whole number from 0 to {MAX_USAGE:,}",
        ),
        Check(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["invoice_id", "organization_id", "product"]},
            "each organization appears once per invoice",
        ),
        Check(
            "ExpectColumnValuesToBeInSet",
            {"column": "product", "value_set": sorted(products)},
            "the product is a known Huntress product",
        ),
    ]


def live_addition_checks() -> list[Check]:
    return [
        # Without an integer id the addition cannot be re-read or written (an id sent as text, say).
        Check("ExpectColumnValuesToNotBeNull", {"column": "addition_id"}, "the addition has an id"),
        Check("ExpectColumnValuesToNotBeNull", {"column": "quantity"}, "the addition quantity is a number"),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "quantity", "min_value": 0},
            "the addition quantity is not negative",
        ),
        Check(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["company_id", "product_identifier"]},
            "a company has at most one live addition per product",
        ),
    ]


def company_checks() -> list[Check]:
    return [
        Check("ExpectColumnValuesToNotBeNull", {"column": "company_id"}, "the company has an id"),
        Check("ExpectColumnValuesToBeUnique", {"column": "company_id"}, "company ids are unique"),
    ]


def organization_checks() -> list[Check]:
    return [
        Check("ExpectColumnValuesToNotBeNull", {"column": "organization_id"}, "the organization has an id"),
        Check("ExpectColumnValuesToBeUnique", {"column": "organization_id"}, "organization ids are unique"),
    ]


def run_suite(name: str, df: pd.DataFrame, checks: Sequence[Check]) -> tuple[pd.Series, SuiteResult]:
    """Validate `df`; return (issue text per row, NA where every check passed; the JSON result)."""
    issues = pd.Series(pd.NA, index=df.index, dtype="string")
    if df.empty:
        return issues, {"suite": name, "success": True, "evaluated": 0, "results": []}
    result = _validate(name, df.reset_index(drop=True), checks)
    summary: list[ExpectationResult] = []
    for check, r in zip(checks, result.results, strict=True):
        failed = list(r.result.get("unexpected_index_list") or []) if not r.success else []
        if r.success is False and not failed and r.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"GX check '{check.says}' on {name} could not run: "
                f"{r.exception_info.get('exception_message')}"
            )
        summary.append(
            {
                "expectation": _snake(check.expectation),
                "kwargs": check.kwargs,
                "says": check.says,
                "success": bool(r.success),
                "unexpected_count": len(failed),
                "unexpected_rows": failed[:1000],
            }
        )
        if failed:
            # Only the clerk's words reach a row's issue (and so a quarantine detail); the
            # expectation's GX name stays in the validation result for whoever debugs the suite.
            text = check.says
            positions = df.index[failed]
            issues.loc[positions] = (
                issues.loc[positions].fillna("").map(lambda old, t=text: f"{old}; {t}" if old else t)
            )
    return issues, {
        "suite": name,
        "success": bool(result.success),
        "evaluated": len(checks),
        "rows": len(df),
        "results": summary,
    }


def _validate(name: str, df: pd.DataFrame, checks: Sequence[Check]) -> ExpectationSuiteValidationResult:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        ctx.data_sources.add_pandas(name).add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
    )
    suite = ctx.suites.add(gx.ExpectationSuite(name=name))
    for check in checks:
        suite.add_expectation(getattr(gx.expectations, check.expectation)(**check.kwargs))
    validation = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    return validation.run(
        batch_parameters={"dataframe": _gx_safe(df)}, result_format={"result_format": "COMPLETE"}
    )


def _gx_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable extension dtypes → object with None, which every GX metric handles the same way."""
    out = df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.api.extensions.ExtensionDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
