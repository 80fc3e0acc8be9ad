"""Isolates one process tree; knows nothing about Lambda (ARCHITECTURE 3.5)."""
