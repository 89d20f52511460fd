"""Board definitions: one TOML file per board (serial settings, memory budget,
cache slots, frame and track limits).  Board-specific facts are data, not code."""
