"""accuracy package."""
