"""From a results tree to tidy DataFrames, statistics and figures. Never imports the runner."""
