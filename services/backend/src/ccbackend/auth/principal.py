"""The authenticated caller of a request (`request["principal"]`) and its role predicates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..model import AuthSource, Role, User

__all__ = ["AuthType", "Principal", "role_name"]


class AuthType:
    """How the principal proved itself (upstream's AuthType: token or session)."""

    TOKEN = "token"
    SESSION = "session"
    NONE = "none"
    """`disable-authentication`: the synthetic admin."""


def role_name(role: Role | str) -> str:
    return role.name if isinstance(role, Role) else role


@dataclass(frozen=True)
class Principal:
    """A user as far as authorisation is concerned: roles and managed projects at request time."""

    username: str
    roles: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    auth_source: int = AuthSource.local
    name: str = ""
    email: str = ""
    auth_type: str = AuthType.SESSION

    @classmethod
    def from_user(cls, user: User, auth_type: str = AuthType.SESSION) -> Principal:
        return cls(
            username=user.username,
            roles=tuple(user.roles),
            projects=tuple(user.projects),
            auth_source=int(user.auth_source),
            name=user.name or "",
            email=user.email or "",
            auth_type=auth_type,
        )

    def has_role(self, role: Role | str) -> bool:
        return role_name(role) in self.roles

    def has_any_role(self, roles: Iterable[Role | str]) -> bool:
        return any(self.has_role(r) for r in roles)

    def has_all_roles(self, roles: Iterable[Role | str]) -> bool:
        return all(self.has_role(r) for r in roles)

    @property
    def is_api_only(self) -> bool:
        """Exactly the single role `api` (machine accounts: see all jobs, write global/admin tags)."""
        return self.roles == ("api",)

    @property
    def level(self) -> Role:
        """The highest known role (the UI's auth level); `anonymous` when none is known."""
        known = [Role[r] for r in self.roles if r in Role.__members__]
        return max(known, default=Role.anonymous)

    def api_json(self) -> dict[str, object]:
        return {
            "username": self.username,
            "name": self.name,
            "email": self.email,
            "roles": list(self.roles),
            "projects": list(self.projects),
            "authSource": self.auth_source,
        }
