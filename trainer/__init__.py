"""A Hydra + MLflow harness for comparing cross-entropy variants on imbalanced or noisy classification."""
