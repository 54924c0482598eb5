"""Hydra's joblib launcher with an addition for the harness (conf/hydra/launcher/joblib.yaml)."""
