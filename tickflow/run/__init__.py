"""`tickflow run`: the whole pipeline as one dry run, live (until Ctrl-C) or over a replay file."""
