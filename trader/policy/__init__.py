"""Policies: the training environment's data, SB3 training, export, bundles and the serving runtime."""
