"""Memory: bytes per GPU for weights, KV/state per token, overheads and budgets (never choosing)."""
