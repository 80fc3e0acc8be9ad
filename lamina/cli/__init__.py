"""The `lamina` command line: typer + rich, talking to a running server over HTTP only."""
