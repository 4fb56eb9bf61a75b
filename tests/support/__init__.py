"""Helpers shared by the tests: real servers and nodes, clients, invariants, sample data paths."""
