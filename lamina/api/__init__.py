"""HTTP faces: the Lambda API and Lamina's own admin API (Starlette)."""
