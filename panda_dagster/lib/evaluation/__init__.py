"""Evaluation of a curated shard: statistics, caption metrics, retrieval benchmark, HTML report.

Every function here takes pandas DataFrames or numpy arrays, so it is testable without the catalog;
the Dagster assets (`panda_dagster/evaluation/`) and `panda report` read the catalog and call them.
"""
