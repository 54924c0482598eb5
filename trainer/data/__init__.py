"""Data: where it comes from (sources, tables, arff, vision), how it is split (splits), what the train split goes
through (imbalance, noise, ssl, resampling, standardize), and the whole preparation of a run (prepare, cache)."""
