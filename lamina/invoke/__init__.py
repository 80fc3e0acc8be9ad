"""The data plane: resolve, lease concurrency, run in an environment."""
