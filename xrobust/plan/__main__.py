"""`python -m xrobust.plan [overrides]`, the same as the `xrobust-plan` console script."""

from xrobust.plan.cli import main

main()
