"""`python -m modelops_catalog`: serve the catalog.yaml that `modelops generate` wrote."""

from modelops_catalog.app import main

main()
