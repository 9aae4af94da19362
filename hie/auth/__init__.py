"""Bearer tokens and what their holders may do."""

from hie.auth.principal import ROLES, Principal
from hie.auth.tokens import generate_token, hash_token

__all__ = ["ROLES", "Principal", "generate_token", "hash_token"]
