"""Target tables (one per target)."""
