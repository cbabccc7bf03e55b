"""`storyteller ratings`: blinded human rating sheets, their import and the readers' verdict.

make (items → sheets + key.json) → raters fill the sheets → import (validated rows → SQLite) →
report (means with intervals, pairwise win rates, agreement, attention checks, correlation with
the automatic metrics). Model identity lives only in key.json, never in a sheet."""
