"""The scenario's Huntress section turned into API shapes once, at start."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

PRODUCTS = ("edr", "ispm", "itdr", "sat", "siem", "siem_extended_retention")


UNIT_PRICE_CENTS = 300  # $3.00 per licensed agent: invoice amount = quantity x this, when not given


DEFAULT_ORG_CREATED_AT = "2025-01-01T00:00:00Z"
TENANT_NAMESPACE = uuid.UUID("6f1c4d2e-8a4b-4c1e-9f65-3b0d6a0e5a11")


# --- data: the scenario turned into API shapes once, at start ---------------------------------------


def _timestamp(value: str) -> str:
    """The API's own format, 2026-11-01T06:00:00Z, whatever RFC 3339 spelling the scenario used."""
    return _parse(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.upper()).astimezone(UTC)


def _utc_words(iso: str) -> str:
    # Account usage line items print dates as "2026-01-10 01:07:08 UTC" (the spec's example), unlike the rest.
    return _parse(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def _month_before(iso: str) -> str:
    dt = _parse(iso)
    year, month = (dt.year, dt.month - 1) if dt.month > 1 else (dt.year - 1, 12)
    day = min(dt.day, 28)  # every month has a 28th; exactness does not matter for a default
    return dt.replace(year=year, month=month, day=day).strftime("%Y-%m-%dT%H:%M:%SZ")


def _period(raw_invoice: dict[str, Any]) -> tuple[str, str]:
    """The invoice's billing period; by default the month that ends when the invoice is created."""
    created = raw_invoice["created_at"]
    start = raw_invoice.get("period_start")
    return (
        _timestamp(start) if start else _month_before(created),
        _timestamp(raw_invoice.get("period_end", created)),
    )


def _count(value: Any) -> int | None:
    """A usage value that is a plain non-negative integer, else None (bad data stays out of totals)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _assign_ids(explicit: set[int]) -> Iterator[int]:
    n = 0
    while True:
        n += 1
        if n not in explicit:
            yield n


class HuntressData:
    """Every response body the sandbox can give, precomputed: handlers only filter, sort and slice."""

    def __init__(self, section: dict[str, Any]) -> None:
        section = copy.deepcopy(section)
        self.account = self._account(section["account"])
        self.account_ref = _ref(self.account)
        managed = section.get("managed_accounts", [])
        # The accounts a reseller manages (spec tag "Reseller": GET /v1/accounts). Accounts
        # provisioned through a reseller are huntress_supported or partner_supported (spec,
        # Account.support_type); the sandbox says partner_supported unless told.
        self.managed = {raw["id"]: self._account(raw, "partner_supported") for raw in managed}
        # Managed accounts whose organizations these credentials may not read (`forbidden`): the
        # spec documents only 200 and 403 for GET /v1/accounts/{account_id}/organizations.
        self.forbidden = {raw["id"] for raw in managed if raw.get("forbidden")}
        # Each organization's own account: what its invoice lines name (reference, "Resellers and
        # their managed accounts"). An organization of no account (deleted since) names the own one.
        self.account_of = {org["id"]: self.account_ref for org in section["organizations"]}
        raw_orgs = {org["id"]: org for org in section["organizations"]}
        for raw in managed:
            for org in raw.get("organizations", []):
                self.account_of[org["id"]] = _ref(self.managed[raw["id"]])
                raw_orgs[org["id"]] = org
        self.invoices: list[dict[str, Any]] = []
        self.invoice_by_id: dict[int, dict[str, Any]] = {}
        self.org_lines: dict[int, list[dict[str, Any]]] = {}
        self.account_lines: dict[int, list[dict[str, Any]]] = {}
        self._build_invoices(section["invoices"], raw_orgs)
        newest = self._newest_usage_by_org(section["invoices"])
        details = [
            self._organization(org, newest.get(org["id"]), self.account["id"])
            for org in section["organizations"]
        ]
        self.organization_by_id = {org["id"]: org for org in details}
        # The list route leaves out actual_usages (the spec's Organization vs OrganizationWithActualProductUsages).
        self.organizations = _listed(details)
        self.managed_details = {
            raw["id"]: [
                self._organization(org, newest.get(org["id"]), raw["id"])
                for org in raw.get("organizations", [])
            ]
            for raw in managed
        }
        self.managed_organizations = {
            account_id: _listed(orgs) for account_id, orgs in self.managed_details.items()
        }

    def _account(self, raw: dict[str, Any], support_type: str = "not_applicable") -> dict[str, Any]:
        address = {
            "line1": "1 Sandbox Way",
            "line2": "",
            "city": "Ellicott City",
            "state": "MD",
            "postal_code": "21043",
            "country": "US",
        }
        return {
            "id": raw["id"],
            "name": raw["name"],
            "subdomain": raw["subdomain"],
            "status": raw.get("status", "enabled"),
            "support_type": raw.get("support_type", support_type),
            "neighborhood_watch": raw.get(
                "neighborhood_watch", dict.fromkeys(("edr", "ispm", "itdr", "sat", "siem"), 0)
            ),
            "billing_address": raw.get("billing_address", address),
            "shipping_address": raw.get("shipping_address", address),
        }

    def _build_invoices(
        self, raw_invoices: list[dict[str, Any]], raw_orgs: dict[int, dict[str, Any]]
    ) -> None:
        line_ids = _assign_ids({line["id"] for inv in raw_invoices for line in inv["lines"] if "id" in line})
        usage_ids = _assign_ids(set())
        for raw in raw_invoices:
            invoice = self._invoice(raw)
            self.invoices.append(invoice)
            self.invoice_by_id[invoice["id"]] = invoice
            start, end = _period(raw)
            self.org_lines[invoice["id"]] = [
                self._org_line(line, next(line_ids) if "id" not in line else line["id"], start, end, raw_orgs)
                for line in raw["lines"]
            ]
            self.account_lines[invoice["id"]] = self._account_lines(raw["lines"], start, end, usage_ids)

    @staticmethod
    def _invoice(raw: dict[str, Any]) -> dict[str, Any]:
        edr = (_count(line["actual_usage"].get("edr")) for line in raw["lines"])
        quantity = raw.get("quantity", sum(n for n in edr if n is not None))
        created = _timestamp(raw["created_at"])
        return {
            "id": raw["id"],
            "amount": raw.get("amount", quantity * UNIT_PRICE_CENTS),
            "created_at": created,
            "currency_type": raw.get("currency_type", "usd"),
            "plan": raw.get("plan", "Huntress Partner"),
            "quantity": quantity,
            "receipt": raw.get("receipt", f"https://pay.stripe.com/invoice/invst_sandbox_{raw['id']}"),
            "status": raw["status"],
            "has_usage": raw.get("has_usage", bool(raw["lines"])),
            "updated_at": _timestamp(raw["updated_at"]) if "updated_at" in raw else created,
        }

    def _org_line(
        self, line: dict[str, Any], line_id: int, start: str, end: str, raw_orgs: dict[int, dict[str, Any]]
    ) -> dict[str, Any]:
        org_id = line["organization_id"]
        name = line["organization_name"] if "organization_name" in line else raw_orgs[org_id]["name"]
        return {
            "id": line_id,
            "period_start": _timestamp(line["period_start"]) if "period_start" in line else start,
            "period_end": _timestamp(line["period_end"]) if "period_end" in line else end,
            "account": self.account_of.get(org_id, self.account_ref),
            "organization": {"id": org_id, "name": name},
            "actual_usage": line["actual_usage"],  # verbatim: bad values are the point
        }

    def _account_lines(
        self, lines: list[dict[str, Any]], start: str, end: str, ids: Iterator[int]
    ) -> list[dict[str, Any]]:
        used = {key for line in lines for key in line["actual_usage"]}
        out = []
        for product in (p for p in PRODUCTS if p in used):
            counts = (_count(line["actual_usage"].get(product)) for line in lines)
            actual = sum(n for n in counts if n is not None)
            out.append(
                {
                    "id": next(ids),
                    "period_start": _utc_words(start),
                    "period_end": _utc_words(end),
                    "account": self.account_ref,
                    "product": product,
                    "subscription": {
                        "start_date": _utc_words(start),
                        "end_date": _utc_words(end),
                        "minimum": 0,
                    },
                    "usage": {"billable": actual, "non_billable": 0, "actual": actual},
                }
            )
        return out

    @staticmethod
    def _newest_usage_by_org(
        raw_invoices: list[dict[str, Any]],
    ) -> dict[int, tuple[dict[str, Any], str, str]]:
        """Each org's first line on the newest invoice that has one, with that invoice's period."""
        newest: dict[int, tuple[dict[str, Any], str, str]] = {}
        for raw in sorted(raw_invoices, key=lambda inv: (_parse(inv["created_at"]), inv["id"])):
            start, end = _period(raw)
            seen: set[int] = set()
            for line in raw["lines"]:
                if line["organization_id"] not in seen:
                    seen.add(line["organization_id"])
                    newest[line["organization_id"]] = (line["actual_usage"], start, end)
        return newest

    def _organization(
        self, raw: dict[str, Any], newest: tuple[dict[str, Any], str, str] | None, account_id: int
    ) -> dict[str, Any]:
        usage = newest[0] if newest else {}
        tenant = raw.get("identity_provider_tenant_id", str(uuid.uuid5(TENANT_NAMESPACE, f"org-{raw['id']}")))
        created = _timestamp(raw.get("created_at", DEFAULT_ORG_CREATED_AT))
        derived = {"agents_count": "edr", "billable_identity_count": "itdr", "sat_learner_count": "sat",
                   "logs_sources_count": "siem"}  # fmt: skip
        counts = {field: raw.get(field, _count(usage.get(product, 0))) for field, product in derived.items()}
        org = {
            "id": raw["id"],
            "agents_count": counts["agents_count"],
            "account_id": account_id,
            "created_at": created,
            "incident_reports_count": raw.get("incident_reports_count", 0),
            "key": raw["key"],
            "logs_sources_count": counts["logs_sources_count"],
            "identity_provider_tenant_id": tenant,
            "billable_identity_count": counts["billable_identity_count"],
            "name": raw["name"],
            "report_recipients": raw.get("report_recipients", []),
            "sat_learner_count": counts["sat_learner_count"],
            "updated_at": _timestamp(raw["updated_at"]) if "updated_at" in raw else created,
            # Required by the spec's Organization model without being described there.
            "microsoft_365_tenant_id": raw.get("microsoft_365_tenant_id", tenant),
            "microsoft_365_users_count": raw.get(
                "microsoft_365_users_count", counts["billable_identity_count"] or 0
            ),
            "notify_emails": raw.get("notify_emails", raw.get("report_recipients", [])),
        }
        # A count the data cannot give (bad usage value) is left out rather than invented.
        org = {k: v for k, v in org.items() if v is not None}
        if "actual_usages" in raw:
            org["actual_usages"] = raw["actual_usages"]
        else:
            org["actual_usages"] = _derived_actual_usages(usage, tenant, newest[1:] if newest else None)
        return org


def _ref(account: dict[str, Any]) -> dict[str, Any]:
    """An account as invoice lines name it (spec, OrganizationUsageLineItem.account)."""
    return {k: account[k] for k in ("id", "name", "subdomain")}


def _listed(orgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in org.items() if k != "actual_usages"} for org in orgs]


def _derived_actual_usages(
    usage: dict[str, Any], tenant: str, period: tuple[str, str] | None
) -> dict[str, Any]:
    """The /v1/organizations/{id} usage block, shaped like the spec's example, values passed through."""
    out: dict[str, Any] = {}
    if "siem" in usage:
        out["siem"] = {"billable_log_sources_count": usage["siem"], "retention": "90/7"}
        if period:
            out["siem"]["previous_billing_cycle"] = {
                "online_gb": 0.0,
                "service_period_start": period[0],
                "service_period_end": period[1],
            }
    if "edr" in usage:
        out["edr"] = {
            "billable_agents_count": usage["edr"],
            "unresponsive_agents_count": 0,
            "outdated_agents_count": 0,
            "isolated_agents_count": 0,
        }
    if "sat" in usage:
        out["sat"] = {"learners_count": usage["sat"]}
    for product in ("ispm", "itdr"):
        if product in usage:
            value = usage[product]
            out[product] = [
                {
                    "type": "microsoft",
                    "identity_provider_tenant_id": tenant,
                    "billable_identities_count": value,
                    "total_identities_count": value,
                }
            ]
    return out
