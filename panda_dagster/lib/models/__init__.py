"""Model wrappers and model profiles (tiny / default / large)."""
