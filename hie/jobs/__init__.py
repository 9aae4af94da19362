"""Bulk ingestion: jobs accepted with 202 (their bytes stored first), split into items, each
stored by workers through the synchronous write path. Nothing is imported here: the command
line reads jobs without loading the web app or the write path."""
