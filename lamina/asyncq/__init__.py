"""Asynchronous invocation: the dispatcher over the durable queue, destinations, dead letters."""
