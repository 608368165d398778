"""The trader: RL policies (training, bundles, serving), risk, portfolio and the paper broker."""
