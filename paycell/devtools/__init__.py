"""Tools for developers, tests and benchmarks; nothing here runs in production."""
