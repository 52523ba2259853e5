"""`python -m billing_sync preflight [--tenant ID]`: will the first run work? (docs/contract.md §1)

Read-only checks of the tenant's connections, invoice, managed accounts, catalog items, agreement
types and the ConnectWise API member's permissions, printed as a table; exit 0 only when nothing
fails. The tenant, its connections and its Variable are read as the DAG reads them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tenants import Tenant


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_sync", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pre = commands.add_parser("preflight", help="read-only checks of what the first run needs")
    pre.add_argument("--tenant", default=None, help="tenant id (default: the only or `default` tenant)")
    pre.add_argument(
        "--today", type=date.fromisoformat, default=None, help=argparse.SUPPRESS
    )  # tests: which billing date is the coming one
    args = parser.parse_args(argv)
    return preflight(args.tenant, args.today)


def preflight(tenant_id: str | None, today: date | None = None) -> int:
    from . import preflight as checks
    from . import tenants
    from .config import load_settings
    from .errors import ConfigError

    try:
        tenant = tenants.by_id(tenant_id) if tenant_id else _only_tenant()
    except (KeyError, tenants.TenantsFileError) as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(_variable(tenant.variable))
    except ConfigError as exc:
        print(checks.table([checks.Check(f"Variable {tenant.variable}", checks.FAIL, str(exc))]))
        return 1
    found = checks.run(tenant, settings, today=today or checks.today_utc())
    print(f"Preflight of tenant {tenant.id} (read-only; nothing was written)\n")
    print(checks.table(found))
    ok = checks.passed(found)
    print(
        "\n"
        + (
            "Nothing fails: the first run can go ahead."
            if ok
            else "Fix the lines marked fail, then run again."
        )
    )
    return 0 if ok else 1


def _only_tenant() -> Tenant:
    from . import tenants

    configured = tenants.configured()
    if len(configured) != 1:
        ids = ", ".join(t.id for t in configured)
        raise KeyError(f"several tenants ({ids}): name one with --tenant")
    return configured[0]


def _variable(key: str) -> str | None:
    """The Variable as the review pages read it (secrets backends, the environment, the database)."""
    from airflow.models.variable import Variable

    value = Variable.get(key, default_var=None)
    return None if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main())
