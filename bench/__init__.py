"""`make bench`: the speed-and-scale benchmark (issue 5). Not part of `make test`."""
