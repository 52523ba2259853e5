"""Which areas of the review pages a user holds on a tenant: one power per area (issue 21 §3).

The areas are those of the settings' `powers` (`config.POWER_AREAS`): ``read``, ``quarantine``
(dismiss, resolve, reopen), ``mappings``, ``approvals`` (approve, create, revoke), ``overrides``,
``settings`` and ``apply`` (Apply now, re-runs, unpausing). The rule, per area, on the page's tenant:

- the tenant's `powers` names roles for the area: the user holds it when Airflow lets them read the
  tenant's DAG (GET on its runs: the auth manager stays the one that says which tenants a user
  sees) and they hold one of those roles (`security.role_names`);
- it names none: the earlier rule — ``read``: GET on the runs; ``quarantine`` and ``apply``: PUT on
  the runs; ``mappings``, ``approvals``, ``overrides``: PUT on the runs and either a role of
  `mapping_roles` or, when it names none, PUT on the DAG itself and on the tenant's settings
  Variable; ``settings``: PUT on the DAG and on the Variable.

The Variable is read once per request; one that does not parse leaves the user ``read`` alone
(fail closed), and the refusals say why. A tenant gone from the tenants file is read only.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from billing_sync.config import POWER_AREAS, AreaName, Settings

EVERY_AREA: frozenset[AreaName] = frozenset(POWER_AREAS)
LABELS: dict[AreaName, str] = {
    "read": "Read",
    "quarantine": "Quarantine",
    "mappings": "Mappings",
    "approvals": "Approvals",
    "overrides": "Overrides",
    "settings": "Settings",
    "apply": "Apply",
}


class Rights(Protocol):
    """What the default rule asks the auth manager (`security.AirflowRights` answers)."""

    def may_dag(self, user: Any, method: Any, dag_id: str, on_runs: bool = True) -> bool: ...

    def may_edit_config(self, user: Any, variable: str) -> bool: ...


@dataclass(frozen=True)
class Held:
    """The areas a user holds on one tenant, and why others may be missing."""

    areas: frozenset[AreaName]
    reads_dag: bool  # Airflow lets them read the tenant's DAG at all
    broken: str | None = None  # the tenant's Variable, when it does not parse

    def refusal(self, area: AreaName, tenant_id: str) -> str:
        """The 403's words when `area` is missing."""
        if not self.reads_dag:
            return "Forbidden"  # as Airflow answers: a tenant the user may not see is not described
        needs = f"This needs the {LABELS[area]} power on tenant {tenant_id}"
        if self.broken:
            return f"{needs}, and it is refused until the Variable {self.broken} is valid JSON with valid settings"
        return f"{needs}; ask an administrator"


def decide(
    rights: Rights,
    user: Any,
    roles: set[str],
    *,
    dag_id: str,
    variable: str | None,
    settings: Callable[[], Settings | None],
) -> Held:
    """The areas `user` (holding the case-folded `roles`) holds on the tenant of `dag_id` whose
    settings Variable is `variable` (None: a former tenant). `settings` reads it (None: it does not
    parse), asked only when the user may read the DAG."""
    if not rights.may_dag(user, "GET", dag_id):
        return Held(frozenset(), reads_dag=False)
    if variable is None:
        return Held(frozenset({"read"}), reads_dag=True)
    found = settings()
    if found is None:
        return Held(frozenset({"read"}), reads_dag=True, broken=variable)
    asked = _Questions(rights, user, dag_id, variable)

    def earlier(area: AreaName) -> bool:
        if area == "read":
            return True
        if area in ("quarantine", "apply"):
            return asked.runs
        if area == "settings":
            return asked.dag and asked.variable
        # mappings, approvals, overrides: who may change who is billed (`mapping_roles` as it was)
        if found.mapping_roles:
            return asked.runs and holds_role(found.mapping_roles, roles)
        return asked.runs and asked.dag and asked.variable

    areas = frozenset(
        a for a in POWER_AREAS if (holds_role(found.powers[a], roles) if a in found.powers else earlier(a))
    )
    return Held(areas, reads_dag=True)


class _Questions:
    """The earlier rule's questions to the auth manager, each asked once and only when needed."""

    def __init__(self, rights: Rights, user: Any, dag_id: str, variable: str) -> None:
        self._rights, self._user, self._dag_id, self._variable = rights, user, dag_id, variable

    @cached_property
    def runs(self) -> bool:  # PUT on the DAG's runs
        return self._rights.may_dag(self._user, "PUT", self._dag_id)

    @cached_property
    def dag(self) -> bool:  # PUT on the DAG itself
        return self._rights.may_dag(self._user, "PUT", self._dag_id, on_runs=False)

    @cached_property
    def variable(self) -> bool:  # PUT on the tenant's settings Variable
        return self._rights.may_edit_config(self._user, self._variable)


def holds_role(configured: tuple[str, ...] | list[str], held: set[str]) -> bool:
    """True when the user holds one of the configured roles (compared case-insensitively)."""
    return any(r.casefold() in held for r in configured)
