"""`python -m storyteller.cli …` runs the `storyteller` command."""

from storyteller.cli import main

main()
