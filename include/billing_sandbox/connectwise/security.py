"""The API member's security role (docs/contract.md §5 `connectwise.security_role`): what it forbids
is answered 403 with ConnectWise's `Security` body, and GET /system/mySecurity tells the member its
own levels.

Sources: the project's ConnectWise reference ("Security roles", "Errors": 403 `{"code": "Security",
"message": "You do not have security permission to perform this action."}`); Huntress's documented
role for its own billing sync (Finance → Agreements: Add None, Edit All or customized, Delete None,
Inquire All; Procurement → Product Catalog: Inquire All). `/system/mySecurity` is not in the cut of
the 2026.4 definition this project vendors; public clients generated from ConnectWise's full
definition call it (the ConnectWiseManageAPI PowerShell module's Get-CWMMySecurity, the Jetbuilt
connect_wise gem's MySecurity model: id, addLevel, editLevel, deleteLevel, inquireLevel,
moduleFunctionName, moduleFunctionIdentifier, moduleIdentifier, moduleName, customFlag, myAllFlag,
member). Nothing public lists the level words it answers: the sandbox says All, None and Customize.

Readings where nothing public says (the stricter one, as the reference asks):
- an area the role names with an operation left out forbids that operation (None);
- a customized Inquire filters the agreements list to the listed agreements (a list refused
  outright would stop every sync; a filtered one is what a role limited to "these agreements" reads
  as), and refuses any one agreement, its additions included, that it does not list;
- an area the role does not name at all is not restricted by the scenario (it describes the role
  under test: the areas the sync needs), so a scenario without `security_role` allows everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ApiError

SECURITY_MESSAGE = "You do not have security permission to perform this action."
OPERATIONS = ("add", "edit", "delete", "inquire")
# area → (moduleIdentifier, moduleName, moduleFunctionIdentifier, moduleFunctionName) as a role shows it.
AREAS: dict[str, tuple[str, str, str, str]] = {
    "finance/agreements": ("Finance", "Finance", "Agreements", "Agreements"),
    "procurement/catalog": ("Procurement", "Procurement", "ProductCatalog", "Product Catalog"),
    "company/companies": ("Companies", "Companies", "CompanyMaintenance", "Company Maintenance"),
}
LEVEL_WORDS = {"all": "All", "none": "None", "customized": "Customize"}
_WRITES = {"POST": "add", "PATCH": "edit", "PUT": "edit", "DELETE": "delete"}


def forbidden() -> ApiError:
    return ApiError(403, "Security", SECURITY_MESSAGE)


class SecurityRole:
    """The scenario's role; `None` section: everything allowed."""

    def __init__(self, section: Mapping[str, Any] | None) -> None:
        self.name = str((section or {}).get("name") or "API member")
        self.restricted = section is not None
        levels = (section or {}).get("levels") or {}
        self.levels: dict[str, dict[str, str]] = {
            area: {op: str(ops.get(op, "none")) for op in OPERATIONS} for area, ops in levels.items()
        }
        self.customized = {int(a) for a in (section or {}).get("customized_agreements") or []}

    def level(self, area: str, op: str) -> str:
        if area not in self.levels:
            return "all"
        return self.levels[area][op]

    def allows(self, area: str, op: str, agreement_id: int | None = None) -> bool:
        level = self.level(area, op)
        if level == "all":
            return True
        if level == "customized" and area == "finance/agreements":
            # Without an agreement (a list): filtered by visible_agreements, not refused.
            return agreement_id is None or agreement_id in self.customized
        return False

    def check(self, method: str, route: str, params: Mapping[str, Any]) -> None:
        """Raise the 403 `Security` answer when the role forbids `method route` (route: the API path
        template after `apis/3.0`)."""
        area = _area(route)
        if area is None:
            return
        op = _WRITES.get(method.upper(), "inquire")
        if not self.allows(area, op, _agreement(route, params)):
            raise forbidden()

    def visible_agreements(self, ids: list[int]) -> list[int] | None:
        """The agreements a list may show: None (all) unless Inquire is customized."""
        if self.level("finance/agreements", "inquire") != "customized":
            return None
        return [i for i in ids if i in self.customized]

    def my_security(self, member: Mapping[str, Any]) -> list[dict[str, Any]]:
        """GET /system/mySecurity: one row per area the sync uses, as ConnectWise's MySecurity model."""
        rows = []
        for n, (area, (module_id, module, function_id, function)) in enumerate(AREAS.items(), start=1):
            levels = {op: self.level(area, op) for op in OPERATIONS}
            rows.append(
                {
                    "id": n,
                    "addLevel": LEVEL_WORDS.get(levels["add"], levels["add"]),
                    "editLevel": LEVEL_WORDS.get(levels["edit"], levels["edit"]),
                    "deleteLevel": LEVEL_WORDS.get(levels["delete"], levels["delete"]),
                    "inquireLevel": LEVEL_WORDS.get(levels["inquire"], levels["inquire"]),
                    "moduleFunctionName": function,
                    "moduleFunctionIdentifier": function_id,
                    "moduleIdentifier": module_id,
                    "moduleName": module,
                    "customFlag": "customized" in levels.values(),
                    "myAllFlag": False,
                    "member": dict(member),
                }
            )
        return rows


def _area(route: str) -> str | None:
    for area in AREAS:
        if route == f"/{area}" or route.startswith(f"/{area}/"):
            return area
    return None


def _agreement(route: str, params: Mapping[str, Any]) -> int | None:
    if not route.startswith("/finance/agreements/{id}"):
        return None
    try:
        return int(params["id"])
    except (KeyError, TypeError, ValueError):
        return None
