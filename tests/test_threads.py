"""trainer.threads: the thread count follows the job's CPU share and the model's size, and a run logs it."""
from __future__ import annotations

import os

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from trainer.models.networks import CNN, MLP
from trainer.run import run
from trainer.runtime import threads

CPU = torch.device("cpu")
CORES = len(os.sched_getaffinity(0))
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def test_the_share_is_the_affinity_narrowed_by_slurm_and_the_launcher():
    assert threads.cpu_share(environ={}) == (CORES, "affinity")
    assert threads.cpu_share(environ={"SLURM_CPUS_PER_TASK": "1"}) == (1, "SLURM_CPUS_PER_TASK")
    assert threads.cpu_share(environ={"SLURM_CPUS_PER_TASK": str(CORES + 8)})[0] == CORES  # never above the affinity
    assert threads.cpu_share({"_target_": JOBLIB, "n_jobs": 2}, environ={})[0] == max(1, CORES // 2)
    assert threads.cpu_share({"_target_": JOBLIB, "n_jobs": -1}, environ={})[0] == 1  # one job per core
    assert threads.cpu_share({"_target_": JOBLIB, "n_jobs": 1}, environ={}) == (CORES, "affinity")
    assert threads.cpu_share({"cpus_per_task": 1}, environ={}) == (1, "hydra.launcher.cpus_per_task")


def test_multiply_adds_count_weights_times_output_positions():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 3 * 3, 4))
    assert threads.macs_per_sample(model, (1, 5, 5), CPU) == 2 * 1 * 3 * 3 * (3 * 3) + 18 * 4
    assert model.training  # the count leaves the model in the mode it found it


def test_small_models_get_one_thread_large_ones_the_share_and_a_setting_wins():
    mlp = MLP((1, 8, 8), 10, hidden=[256, 128])
    assert threads.choose(None, mlp, (1, 8, 8), 32, CPU, {"cpus_per_task": 2}).threads == 1
    cnn = CNN((3, 64, 64), 10, channels=[32, 64], hidden=128)
    big = threads.choose(None, cnn, (3, 64, 64), 256, CPU, {"cpus_per_task": 2})
    assert big.macs_per_step > threads.SMALL_STEP_MACS and big.threads == min(2, CORES)
    assert threads.choose(3, mlp, (1, 8, 8), 32, CPU).threads == 3
    # a resumed run keeps its thread count; the job's log says where it came from
    assert threads.choose(3, mlp, (1, 8, 8), 32, CPU).source == "trainer.threads"
    assert threads.choose(3, mlp, (1, 8, 8), 32, CPU, pinned_by="the run being resumed").source == \
        "the run being resumed"


def test_a_run_without_trainer_threads_trains_and_logs_the_chosen_count(run_cfg, store):
    torch.set_num_threads(CORES)
    result = run(run_cfg())  # the default digits MLP: a small model
    r = MlflowClient(store).get_run(result.run_id)
    assert r.data.params["torch.threads"] == r.data.tags["torch.threads"] == "1" == str(torch.get_num_threads())


@pytest.mark.parametrize("bad", ["0", "x"])
def test_a_malformed_slurm_share_is_ignored(bad):
    assert threads.cpu_share(environ={"SLURM_CPUS_PER_TASK": bad}) == (CORES, "affinity")
