"""The live view: a small web page of price, signals, positions and PnL, read from the topics."""
