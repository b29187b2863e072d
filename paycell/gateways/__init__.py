"""Adapters to the outside world, each a small interface with a loopback simulator."""
