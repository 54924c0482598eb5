"""Sweeps and search: how Hydra runs a job (job), the sweep's parent run and hand-over (callback), the checks before
its first job (check), what became of each job (outcome), runs a killed process left RUNNING (orphans), and the
Optuna search's job side, space and record (search, search_space, search_report).

Light on purpose: Hydra imports the callback on every command; nothing here imports torch, mlflow or matplotlib at
import time."""
