"""Developer scripts: `make run` (run_local.sh) and `make stack` (local_stack/); a package so that
`python -m scripts.local_stack` runs and the tests import it."""
