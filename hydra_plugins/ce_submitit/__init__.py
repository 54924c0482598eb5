"""Hydra's submitit Slurm launcher with two additions for the harness (conf/hydra/launcher/submitit_slurm.yaml)."""
