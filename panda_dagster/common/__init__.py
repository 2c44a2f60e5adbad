"""Dagster pieces shared by every stage: partitions and resources."""
