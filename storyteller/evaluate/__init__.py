"""`storyteller evaluate` and `storyteller ratings`: base versus tuned, by metric and by reader."""
