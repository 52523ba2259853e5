"""SimpleAuthManager whose users also carry FAB-style role names, for tests of the review pages'
powers through a real Airflow login.

SimpleAuthManager knows four roles (viewer, user, op, admin), one per user; the powers of issue 21
§3 are granted to any role names, as FAB's users carry them (``user.roles``: objects with a
``name``). This manager keeps SimpleAuthManager's users, passwords, login page, tokens and
authorization, and gives each user, when its token is read, the role names listed for it in the
JSON object of the environment variable ``BILLING_TEST_USER_ROLES`` (``{"ann": ["Billing Clerk"]}``).

Configure it with ``AIRFLOW__CORE__AUTH_MANAGER=tests.helpers.roles_auth_manager.RolesAuthManager``
(the repository root on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

ROLES_ENV = "BILLING_TEST_USER_ROLES"


@dataclass(frozen=True)
class Role:
    """As FAB's role objects: a name."""

    name: str


class RolesUser(SimpleAuthManagerUser):
    """A SimpleAuthManager user with FAB-style ``roles`` besides its one ``role``."""

    def __init__(
        self, *, username: str, role: str | None, teams: list[str] | None, roles: list[Role]
    ) -> None:
        super().__init__(username=username, role=role, teams=teams)
        self.roles = roles


def roles_of(username: str) -> list[Role]:
    listed = json.loads(os.environ.get(ROLES_ENV) or "{}")
    return [Role(str(name)) for name in listed.get(username, [])]


class RolesAuthManager(SimpleAuthManager):
    def deserialize_user(self, token: dict[str, Any]) -> SimpleAuthManagerUser:
        user = super().deserialize_user(token)
        return RolesUser(
            username=user.username, role=user.role, teams=user.teams, roles=roles_of(user.username)
        )
