"""`make demo`: the whole pipeline on one machine, with a live terminal view and a report."""
