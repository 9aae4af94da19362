"""PostgreSQL storage: explicit SQL through psycopg 3, one module per group of tables."""

from hie.storage.database import Connection, Database, Transaction, open_database

__all__ = ["Connection", "Database", "Transaction", "open_database"]
