"""Who is calling, and the rules of what each role may do."""

from __future__ import annotations

from dataclasses import dataclass

from hie.errors import PermissionDenied

ROLES = ("submitter", "regulator", "admin", "clinician")
# Roles bound to one institution: they read (and a submitter writes) only its data, except a
# clinician's look-ups in the person index.
INSTITUTION_ROLES = ("submitter", "clinician")


@dataclass(frozen=True)
class Principal:
    """The holder of a valid token. A submitter or clinician always belongs to one institution."""

    token_id: int
    role: str
    institution_code: str | None

    @property
    def actor(self) -> str:
        """How the audit log names this caller (never the token itself)."""
        return f"token:{self.token_id}"

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise PermissionDenied(f"this needs a {' or '.join(roles)} token; yours is {self.role}")

    def can_read(self, institution_code: str) -> bool:
        return self.role in ("admin", "regulator") or self.institution_code == institution_code

    def can_write_for(self, institution_code: str) -> bool:
        return self.role == "admin" or (
            self.role == "submitter" and self.institution_code == institution_code
        )

    def require_read(self, institution_code: str) -> None:
        if not self.can_read(institution_code):
            raise PermissionDenied(
                f"a {self.role} token of {self.institution_code} cannot read {institution_code}"
            )

    def require_write_for(self, institution_code: str) -> None:
        if not self.can_write_for(institution_code):
            if self.role in ("regulator", "clinician"):
                raise PermissionDenied(f"a {self.role} token reads; it cannot change data")
            raise PermissionDenied(
                f"a submitter token of {self.institution_code} cannot act for {institution_code}"
            )
