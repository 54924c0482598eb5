"""ce-harness's Hydra sweeper on Optuna's own ask-and-tell API: `python train.py -m hparams_search=<preset>`.

Hydra imports every module of the hydra_plugins namespace package on each command: keep imports here light
(optuna and mlflow are imported inside the functions that use them).
"""
