"""Analysis across runs (scripts/compare.py): which runs and how they pair (grouping), the statistics (stats), the
report (report) and the command (compare). Nothing on the training path imports it."""
