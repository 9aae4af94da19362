"""Cross-cutting HTTP pieces shared by every router: authentication, errors, body limits,
security headers."""

from hie.http.characters import RefuseUnstorable
from hie.http.errors import UnexpectedErrors, install_error_handlers
from hie.http.headers import SecurityHeaders
from hie.http.limits import BodySizeLimit
from hie.http.security import current_principal, database_of

__all__ = [
    "BodySizeLimit",
    "RefuseUnstorable",
    "SecurityHeaders",
    "UnexpectedErrors",
    "current_principal",
    "database_of",
    "install_error_handlers",
]
