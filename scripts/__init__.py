"""Developer scripts (`make run`, `make stack`); a package so that the tests can import scripts.stack."""
