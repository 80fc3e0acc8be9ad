"""Execution environments: one runtime process tree each, pooled per function version."""
