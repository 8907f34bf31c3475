"""The second seed's permission table: each role is a set of permissions.

Every surface (REST, MCP, ``/v1/tools``) checks the same permission names through
``Principal.require``, so a role means the same thing wherever a caller comes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.errors import Forbidden


class Permission(StrEnum):
    EXECUTE = "execute"  # one-shot runs, session cells, generate
    INSTALL = "install"  # install_package
    RUN_SCRIPT = "run_script"
    QUERY = "query"  # the read-only database tools
    READ = "read"  # file-storage reads
    WRITE = "write"  # file-storage writes
    LIST = "list"  # file-storage listings


class Role(StrEnum):
    DATA_SCIENTIST = "data_scientist"
    DATA_ENGINEER = "data_engineer"
    ML_ENGINEER = "ml_engineer"
    ADMIN = "admin"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.DATA_SCIENTIST: frozenset({P.EXECUTE, P.INSTALL, P.QUERY, P.READ, P.LIST}),
    Role.DATA_ENGINEER: frozenset({P.EXECUTE, P.RUN_SCRIPT, P.QUERY, P.READ, P.WRITE, P.LIST}),
    Role.ML_ENGINEER: frozenset({P.EXECUTE, P.INSTALL, P.QUERY, P.READ, P.WRITE, P.LIST}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an API key's id and role, or the local operator."""

    identity: str  # for logs, audit and quotas: "key:<id>" or "local"
    role: Role
    key_id: str | None = None  # the API key's id; None for the local operator

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self.role]

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        """Raise ``Forbidden`` naming the role and the permission it lacks."""
        if not self.can(permission):
            raise Forbidden(f"role {self.role.value} may not {permission.value}")


# Who a request is when the gateway runs without API keys (loopback-only by default).
LOCAL_OPERATOR = Principal(identity="local", role=Role.ADMIN)
