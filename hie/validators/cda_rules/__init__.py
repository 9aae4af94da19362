"""The CDA rule families, one module each: document (look-ups and locations), schema (XML Schema),
header (the Chinese header profile), catalog (which table) and content (per-table rules as data)."""
