"""`storyteller curate`: raw stories in many formats → clean, deduplicated, leakage-safe pairs."""
