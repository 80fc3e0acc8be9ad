"""Durable state: the only place with SQL or file-layout knowledge."""
