"""panda-dagster: a Dagster pipeline that turns raw videos into a curated video-text dataset."""

__version__ = "0.1.0"
