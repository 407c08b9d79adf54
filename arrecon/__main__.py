"""`python -m arrecon` is the same as the `arrecon` command."""

from arrecon.flows.cli import main

main()
