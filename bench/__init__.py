"""`make bench`: the speed-and-scale benchmark. Not part of `make test`."""
