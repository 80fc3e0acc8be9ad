"""Function output and platform lines (spec 6)."""
