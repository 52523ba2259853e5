"""`ConnectWiseSandbox`: the sandbox's data (collections built from the scenario) and its operations."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ERROR_CODES, ApiError, _error, not_found
from .query import Collection
from .records import (
    DERIVED,
    _new_lookups,
    build_addition,
    build_agreement,
    build_catalog_item,
    build_company,
    derive_addition,
)
from .schemas import ADDITION_SCHEMA, AGREEMENT_SCHEMA, CATALOG_SCHEMA, COMPANY_SCHEMA
from .security import SecurityRole
from .values import API_MEMBER, DEFAULT_CODEBASE, _info, _now, _prune
from .writes import (
    _WRITABLE_LOWER,
    ADDITION_RESOURCE,
    READ_ONLY,
    REMOVED,
    REQUIRED,
    WRITABLE,
    AdditionWriter,
    _field_error,
    _show_value,
)

# ---------------------------------------------------------------------------------------------
# The sandbox's data and operations


SNAPSHOT_FIELDS: dict[str, tuple[str, ...]] = {
    "company": (
        "id",
        "identifier",
        "name",
        "status",
        "types",
        "deletedFlag",
        "parentCompany",
        "billToCompany",
    ),
    "catalog": (
        "id",
        "identifier",
        "description",
        "customerDescription",
        "inactiveFlag",
        "productClass",
        "price",
        "cost",
        "recurringFlag",
    ),
    "agreement": (
        "id",
        "name",
        "type",
        "company",
        "agreementStatus",
        "cancelledFlag",
        "dateCancelled",
        "startDate",
        "endDate",
        "noEndingDateFlag",
        "parentAgreement",
        "billToCompany",
    ),
}


def _compact(record: Mapping[str, Any], keys: Iterable[str] | None) -> dict[str, Any]:
    """A copy of `keys` (None: all) with references stripped of their `_info` links."""
    out: dict[str, Any] = {}
    for key in record if keys is None else keys:
        if key not in record:
            continue
        value = record[key]
        if key == "_info":
            value = {k: v for k, v in value.items() if not k.endswith("_href")}
        elif isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != "_info"}
        elif isinstance(value, list):
            value = [
                {k: v for k, v in x.items() if k != "_info"} if isinstance(x, Mapping) else x for x in value
            ]
        out[key] = value
    return out


class ConnectWiseSandbox:
    """The data behind the app. Handlers run on the event loop; the lock guards snapshot()/reset()
    when they are called from another thread (admin routes, tests)."""

    # Faults only this API takes (docs/contract.md §5), through POST /_sandbox/faults (common.py).
    FAULT_OPTIONS: dict[str, tuple[dict[str, Any], Any]] = {
        # An attacker-controlled answer, not ConnectWise behaviour: nothing public says ConnectWise
        # ever hands back a paging link to another host, so this is the less convenient reading (a
        # hostile site, proxy or DNS answer). A page that has a rel="next" link serves this template
        # instead, with `{scheme}`, `{host}`, `{port}`, `{path}` and `{query}` of the real next link
        # filled in, e.g. "http://127.0.0.2:9\\@{host}:{port}{path}?{query}" (a parser-differential
        # form) or "{path}?{query}" (an honest relative link). null: the real link.
        "next_link": ({"type": ["string", "null"], "maxLength": 4000}, None),
    }
    next_link: str | None = None

    def apply_fault_options(self, options: dict[str, Any]) -> None:
        self.next_link = options["next_link"]

    def __init__(self, section: Mapping[str, Any], scenario: Mapping[str, Any] | None = None) -> None:
        # A private copy (JSON round trip: far faster than deepcopy at 20k records) that the
        # builders only read, so reset() can rebuild from it without copying again.
        self.section = json.loads(json.dumps(section))
        self.company_id = str(self.section["company_id"])
        self.codebase = str(self.section.get("codebase") or DEFAULT_CODEBASE).strip("/") + "/"
        account = ((scenario or {}).get("huntress") or {}).get("account") or {}
        self.company_name = str(self.section.get("company_name") or account.get("name") or self.company_id)
        # 401 (default) or 404, as cloud sites sometimes answer bad credentials (see `unauthorized`).
        self.bad_credentials_status = int(self.section.get("bad_credentials_status", 401))
        self.lock = threading.RLock()
        # The API member's role (security.py); absent: everything allowed.
        self.security = SecurityRole(self.section.get("security_role"))
        self._load_fixed(self.section)
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Restore the scenario's additions; the audit trail starts empty again."""
        with self.lock:
            self._load_additions(self.section)

    def _load_fixed(self, section: Mapping[str, Any]) -> None:
        """Companies, catalog and agreements: the API never writes them, so they are built once."""
        lk = self.lookups = _new_lookups()
        companies = (build_company(c, lk) for c in section["companies"])
        self.companies = Collection("company", COMPANY_SCHEMA, companies)
        self.catalog = Collection(
            "catalog", CATALOG_SCHEMA, (build_catalog_item(p) for p in section["catalog"])
        )
        agreements = (build_agreement(a, self.companies.by_id, lk) for a in section["agreements"])
        self.agreements = Collection("agreement", AGREEMENT_SCHEMA, agreements)
        self.writer = AdditionWriter(self.catalog)

    def _load_additions(self, section: Mapping[str, Any]) -> None:
        additions = []
        self.fixed_status: dict[int, str] = {}
        for src in section["agreements"]:
            agreement = self.agreements.by_id[src["id"]]
            for seq, add_src in enumerate(src.get("additions") or [], start=1):
                record, fixed = build_addition(add_src, agreement, self.catalog.by_id, seq)
                additions.append(record)
                if fixed:
                    self.fixed_status[record["id"]] = fixed
        self.additions = Collection("addition", ADDITION_SCHEMA, additions)
        self.by_agreement: dict[int, list[int]] = {aid: [] for aid in self.agreements.ids}
        for aid in self.additions.ids:
            self.by_agreement[self.additions.by_id[aid]["agreementId"]].append(aid)
        self.next_addition_id = (self.additions.ids[-1] if self.additions.ids else 0) + 1
        self.audit: list[dict[str, Any]] = []
        self.audit_by_addition: dict[int, list[dict[str, Any]]] = {}

    def snapshot(self) -> dict[str, Any]:
        """The current data, compact: API field names and values, without `_info` links.

        Additions are complete (every field, derived ones included); the other resources keep
        the fields a sync or a test looks at."""
        with self.lock:
            return {
                "company_id": self.company_id,
                "codebase": self.codebase,
                "companies": [_compact(r, SNAPSHOT_FIELDS["company"]) for r in self._records(self.companies)],
                "catalog": [_compact(r, SNAPSHOT_FIELDS["catalog"]) for r in self._records(self.catalog)],
                "agreements": [
                    _compact(r, SNAPSHOT_FIELDS["agreement"]) for r in self._records(self.agreements)
                ],
                "additions": [_compact(r, None) for r in self._records(self.additions)],
                "audit_trail": [dict(entry) for entry in self.audit],
                "counts": {
                    "companies": len(self.companies.ids),
                    "catalog": len(self.catalog.ids),
                    "agreements": len(self.agreements.ids),
                    "additions": len(self.additions.ids),
                    "audit_trail": len(self.audit),
                },
            }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """ConnectWise's error shape for faults the sandbox injects (used by common.py)."""
        code = ERROR_CODES.get(status, "UnexpectedError" if status >= 500 else "BadRequest")
        return ApiError(status, code, message, [_error(code, message, "request", "")]).body()

    @staticmethod
    def _records(coll: Collection) -> Iterable[dict[str, Any]]:
        return (coll.by_id[i] for i in coll.ids)

    # -- reads -------------------------------------------------------------------------------
    def agreement(self, agreement_id: int) -> dict[str, Any]:
        record = self.agreements.by_id.get(agreement_id)
        if record is None:
            raise not_found("agreement", f"Agreement with id {agreement_id} was not found.")
        return record

    def addition(self, agreement_id: int, addition_id: int) -> dict[str, Any]:
        self.agreement(agreement_id)
        record = self.additions.by_id.get(addition_id)
        if record is None or record["agreementId"] != agreement_id:
            raise not_found(
                ADDITION_RESOURCE,
                f"Agreement addition with id {addition_id} was not found on agreement {agreement_id}.",
            )
        return record

    # -- writes ------------------------------------------------------------------------------
    def patch_addition(self, agreement_id: int, addition_id: int, operations: Any) -> dict[str, Any]:
        record = self.addition(agreement_id, addition_id)
        if not isinstance(operations, list):
            raise _field_error(
                "patch",
                "InvalidPatch",
                'The body must be a JSON Patch array, e.g. [{"op": "replace", "path": "quantity", "value": 42}].',
            )
        updates: dict[str, Any] = {}
        for index, op in enumerate(operations):
            field, value = self._patch_operation(index, op)
            updates[field] = value
        return self._commit(record, updates)

    def _patch_operation(self, index: int, op: Any) -> tuple[str, Any]:
        where = f"operation {index}"
        if not isinstance(op, Mapping):
            raise _field_error(
                "patch", "InvalidPatch", f"{where}: each operation must be an object with op and path."
            )
        kind, path = op.get("op"), op.get("path")
        if not isinstance(kind, str) or kind.lower() not in ("replace", "add", "remove"):
            raise _field_error(
                "patch",
                "InvalidPatch",
                f"{where}: op must be replace, add or remove (got {json.dumps(kind)}).",
            )
        if not isinstance(path, str) or not path.strip("/ "):
            raise _field_error("patch", "InvalidPatch", f"{where}: path must name a field, e.g. quantity.")
        field = self._patch_path(path)
        kind = kind.lower()
        if kind == "remove":
            if field in REQUIRED:
                raise _field_error(
                    field, "NullValue", f"The field {field} is required and cannot be removed."
                )
            return field, REMOVED.get(WRITABLE[field][0])
        if "value" not in op:
            raise _field_error(field, "InvalidPatch", f"{where}: {kind} needs a value.")
        return field, self.writer.coerce(field, op["value"])

    @staticmethod
    def _patch_path(path: str) -> str:
        """The field a JSON Patch path names: a bare field name as the API spells it, with or
        without one leading slash (`quantity`, `/quantity`: both seen in real clients, reference
        "Writes"). Paths are case-sensitive and name top-level fields only; `Quantity`,
        `product/identifier` or `/quantity/` are refused, since the real API refuses or mishandles
        them (reference) and nothing public shows them working."""
        name = path[1:] if path.startswith("/") else path
        if name in WRITABLE:
            return name
        if name in READ_ONLY:
            raise _field_error(name, "ReadOnly", f"The field {name} is read-only.")
        top = name.split("/")[0]
        if top in READ_ONLY:
            raise _field_error(top, "ReadOnly", f"The field {top} is read-only.")
        raise _field_error(
            name, "InvalidField", f"Unknown field '{name}': a patch path is a field name such as quantity."
        )

    def put_addition(self, agreement_id: int, addition_id: int, body: Any) -> dict[str, Any]:
        record = self.addition(agreement_id, addition_id)
        values = self._full_values(body)
        if body.get("id") not in (None, addition_id):
            raise _field_error(
                "id", "InvalidField", f"The body's id {body.get('id')!r} does not match {addition_id}."
            )
        if body.get("agreementId") not in (None, agreement_id):
            raise _field_error("agreementId", "ReadOnly", "An addition cannot move to another agreement.")
        if values["sequenceNumber"] is None:
            values["sequenceNumber"] = record.get("sequenceNumber")
        return self._commit(record, values)

    def create_addition(self, agreement_id: int, body: Any) -> dict[str, Any]:
        agreement = self.agreement(agreement_id)
        values = self._full_values(body)
        if values["sequenceNumber"] is None:
            siblings = (
                self.additions.by_id[i].get("sequenceNumber", 0) for i in self.by_agreement[agreement_id]
            )
            values["sequenceNumber"] = max(siblings, default=0) + 1
        record: dict[str, Any] = {"id": self.next_addition_id, **values}
        record.update(agreementId=agreement_id, agreementStatus="Active")
        record.update(dict.fromkeys(DERIVED, 0))
        record["_info"] = _info(_now(), API_MEMBER)
        record = _prune(record)
        derive_addition(record, None, agreement.get("agreementStatus"))
        self.next_addition_id += 1
        self.additions.add(record)
        self.by_agreement[agreement_id].append(record["id"])
        product = record["product"].get("identifier", record["product"]["id"])
        self._audit(
            record, "Added", f"Addition {product} added with quantity {_show_value(record['quantity'])}"
        )
        return record

    def delete_addition(self, agreement_id: int, addition_id: int) -> None:
        record = self.addition(agreement_id, addition_id)
        self.additions.remove(addition_id)
        self.by_agreement[agreement_id].remove(addition_id)
        self.fixed_status.pop(addition_id, None)
        product = record["product"].get("identifier", record["product"]["id"])
        self._audit(
            record, "Deleted", f"Addition {product} deleted (quantity was {_show_value(record['quantity'])})"
        )

    def _full_values(self, body: Any) -> dict[str, Any]:
        """Every writable field of a POST/PUT body, defaults for those left out; unknown keys are
        ignored (as ConnectWise's JSON binder does), read-only ones too."""
        if not isinstance(body, Mapping):
            raise _field_error("body", "InvalidObject", "The body must be a JSON object.")
        given = {_WRITABLE_LOWER[k.lower()]: v for k, v in body.items() if k.lower() in _WRITABLE_LOWER}
        for field in ("product", "billCustomer"):
            if given.get(field) is None:
                raise _field_error(field, "NullValue", f"The field {field} is required.")
        values = {"product": self.writer.coerce("product", given["product"])}
        defaults = self.writer.defaults(values["product"])
        for field in WRITABLE:
            if field != "product":
                values[field] = (
                    self.writer.coerce(field, given[field]) if field in given else defaults.get(field)
                )
        return values

    def _commit(self, record: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
        changes = [(f, record.get(f), v) for f, v in updates.items() if record.get(f) != v]
        for field, _old, new in changes:
            if new is None:
                record.pop(field, None)
            else:
                record[field] = new
            if field == "cancelledDate":
                self.fixed_status.pop(record["id"], None)  # a new cancel date re-derives the status
        agreement_status = self.agreements.by_id[record["agreementId"]].get("agreementStatus")
        derive_addition(record, self.fixed_status.get(record["id"]), agreement_status)
        record["_info"] = {**record["_info"], "lastUpdated": _now(), "updatedBy": API_MEMBER}
        self.additions.changed(record["id"])
        if not changes:
            self._audit(record, "Saved", "Addition saved with no changes")
        for field, old, new in changes:
            label = WRITABLE[field][1]
            self._audit(record, label, f"{label} changed from {_show_value(old)} to {_show_value(new)}")
        return record

    def _audit(self, record: Mapping[str, Any], subtype: str, text: str) -> None:
        entry = {
            "text": text,
            "enteredDate": _now(),
            "enteredBy": API_MEMBER,
            "auditType": "AgreementAddition",
            "auditSubType": subtype,
            "auditSource": "API",
        }
        self.audit_by_addition.setdefault(record["id"], []).append(entry)
        self.audit.append(
            {"type": "AgreementAddition", "id": record["id"], "agreementId": record["agreementId"], **entry}
        )
