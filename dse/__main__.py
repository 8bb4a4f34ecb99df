"""`python -m dse` runs the CLI."""

from dse.cli import main

main()
