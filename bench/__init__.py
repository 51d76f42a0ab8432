"""Benchmarks: scripts that measure the server against its limits. Not tests."""
