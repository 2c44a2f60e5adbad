"""Stage: clips."""
