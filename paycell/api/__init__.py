"""The HTTP API: app factory, authentication, error mapping, dependencies."""
