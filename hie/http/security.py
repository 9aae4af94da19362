"""Bearer-token authentication for every endpoint but /healthz."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hie.auth import Principal
from hie.errors import Unauthenticated
from hie.storage import Database
from hie.storage.tokens import authenticate

_bearer = HTTPBearer(auto_error=False, description="A token made by `hie tokens create`.")


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthenticated("send 'Authorization: Bearer <token>'")
    with database_of(request).connection() as conn:
        principal = authenticate(conn, credentials.credentials)
    if principal is None:
        raise Unauthenticated("the token is unknown or revoked")
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
DatabaseDep = Annotated[Database, Depends(database_of)]
