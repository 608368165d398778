"""Features v1: one incremental implementation (engine.py) over closed bars.

Their names, order and version are a contract (contracts/feature_schema.py).
"""
