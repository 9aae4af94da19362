"""Residents' consents to share their records, break-glass, and the access decision."""
