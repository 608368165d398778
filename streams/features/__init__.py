"""Features v1: one incremental implementation (engine.py) over closed bars, named and versioned (schema.py)."""
