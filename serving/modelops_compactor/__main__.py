"""`python -m modelops_compactor`: what the CronJob runs."""

from modelops_compactor.compactor import main

main()
