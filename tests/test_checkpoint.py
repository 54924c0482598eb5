"""Checkpoints and resume: what a checkpoint holds, that bad files are refused by name, and that an
interrupted run (signal or SIGKILL) continues to exactly the result of an uninterrupted one."""
from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from helpers import ROOT, make_cfg, train_cli
from trainer.errors import UserError
from trainer.run import run
from trainer.runtime.signals import Interrupted
from trainer.train import checkpoint, loop
from trainer.train.checkpoint import CheckpointError
from trainer.train.loop import EpochProgress, LoopState


def _parts(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss(weight=torch.rand(3))
    return model, optimizer, scheduler, loss_fn


def _step(model, optimizer, scheduler) -> None:
    loss = model(torch.randn(5, 4)).logsumexp(-1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def _draws(generator: torch.Generator) -> tuple:
    """The next number of every random source a run uses."""
    return (random.random(), float(np.random.rand()), float(torch.rand(())),
            float(torch.rand((), generator=generator)))


def test_a_checkpoint_restores_weights_optimizer_loss_random_states_and_loop_state(tmp_path):
    model, optimizer, scheduler, loss_fn = _parts()
    generator = torch.Generator().manual_seed(3)
    _step(model, optimizer, scheduler)
    state = LoopState(epoch=3, best_score=0.5, best_epoch=2, best_weights={k: v.clone() for k, v in
                      model.state_dict().items()}, wait=1, history=[{"epoch": 3, "val/ce": 0.6}],
                      progress=EpochProgress(generator.get_state(), 7,
                                             torch.tensor([[1.5, 2.5]] * 7, dtype=torch.float64)),
                      seconds=4.0)
    path = tmp_path / "checkpoint.pt"
    checkpoint.write(path, checkpoint.snapshot(run_id="r1", model=model, optimizer=optimizer, loss_fn=loss_fn,
                                               state=state, generator=generator))
    expected_draws = _draws(generator)
    expected_weights = {k: v.clone() for k, v in model.state_dict().items()}
    _step(model, optimizer, scheduler)  # move everything on, then load into fresh objects

    model2, optimizer2, _, loss_fn2 = _parts(seed=1)
    generator2 = torch.Generator()
    restored = checkpoint.restore(checkpoint.load(path, "r1"), model=model2, optimizer=optimizer2,
                                  loss_fn=loss_fn2, generator=generator2, device=torch.device("cpu"))
    assert _draws(generator2) == expected_draws
    assert all(torch.equal(v, expected_weights[k]) for k, v in model2.state_dict().items())
    assert torch.equal(loss_fn2.weight, loss_fn.weight)
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(0.05)  # the learning rate the scheduler left
    assert optimizer2.state_dict()["state"][0]["step"] == 1
    assert (restored.epoch, restored.best_score, restored.best_epoch, restored.wait, restored.history,
            restored.seconds) == (3, 0.5, 2, 1, [{"epoch": 3, "val/ce": 0.6}], 4.0)
    assert restored.progress.steps == 7 and restored.progress.values.tolist() == [[1.5, 2.5]] * 7
    assert torch.equal(restored.progress.generator_state, state.progress.generator_state)
    assert all(torch.equal(restored.best_weights[k], state.best_weights[k]) for k in state.best_weights)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    model, optimizer, _, loss_fn = _parts()
    path = tmp_path / "checkpoint.pt"
    kwargs = dict(run_id="r1", model=model, optimizer=optimizer, loss_fn=loss_fn, generator=torch.Generator())
    checkpoint.write(path, checkpoint.snapshot(state=LoopState(epoch=1), **kwargs))

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(CheckpointError, match=r"could not be written \(disk full; .* MiB free in .*\); the previous "
                                              r"checkpoint is kept"):
        checkpoint.write(path, checkpoint.snapshot(state=LoopState(epoch=2), **kwargs))
    assert checkpoint.load(path)["loop"]["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_full_disk_under_torch_save_is_one_error_naming_the_file(tmp_path):
    # torch.save into a full disk raised "[enforce fail at inline_container.cc:672] . unexpected pos ..."
    model, optimizer, _, loss_fn = _parts()
    path = tmp_path / "checkpoint.pt"
    (tmp_path / "checkpoint.pt.tmp").symlink_to("/dev/full")  # every write there fails with ENOSPC
    with pytest.raises(CheckpointError) as err:
        checkpoint.write(path, checkpoint.snapshot(run_id="r1", model=model, optimizer=optimizer, loss_fn=loss_fn,
                                                   state=LoopState(), generator=torch.Generator()))
    assert str(err.value).startswith(f"checkpoint {path}: could not be written (No space left on device; ")
    assert "no earlier checkpoint exists" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("kind", ["truncated", "empty", "pickle", "foreign_torch", "other_run"])
def test_a_bad_checkpoint_file_is_a_clear_error_naming_it_never_a_pickle_load(tmp_path, kind):
    model, optimizer, _, loss_fn = _parts()
    path = tmp_path / "checkpoint.pt"
    checkpoint.write(path, checkpoint.snapshot(run_id="r1", model=model, optimizer=optimizer, loss_fn=loss_fn,
                                               state=LoopState(), generator=torch.Generator()))
    whole = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(whole[:len(whole) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(_Evil()))
    elif kind == "foreign_torch":
        torch.save({"state_dict": model.state_dict()}, path)
    expected = {"truncated": "cannot be read", "empty": "cannot be read", "pickle": "cannot be read",
                "foreign_torch": "is not a ce-harness-checkpoint file", "other_run": "belongs to run r1"}[kind]
    with pytest.raises(CheckpointError, match=expected) as err:
        checkpoint.load(path, run_id="r2" if kind == "other_run" else None)
    assert str(path) in str(err.value)
    assert not (tmp_path / "pwned").exists()


# CPU: deterministic by default there (on CUDA trainer.deterministic=auto is off), so results compare exactly
RESUME = ("trainer.epochs=4", "trainer.patience=null", "regularization=dropout", "trainer.threads=1",
          "trainer.device=cpu")


def _histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric's (step, value) history, wall-clock figures left out."""
    keys = [k for k in client.get_run(run_id).data.metrics if not k.startswith("time/")]
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}


def _run_stopped_by_sigterm(cfg, at_call: int = 17) -> Interrupted:
    """Run cfg and send SIGTERM to this process at the at_call-th call of penalty() (once per step and eval)."""
    real_penalty, calls = loop.penalty, []

    def penalty_then_sigterm(*args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            signal.raise_signal(signal.SIGTERM)
        return real_penalty(*args, **kwargs)

    with mock.patch.object(loop, "penalty", penalty_then_sigterm), pytest.raises(Interrupted) as err:
        run(cfg)
    return err.value


def test_sigterm_mid_epoch_checkpoints_ends_killed_and_resume_equals_an_uninterrupted_run(run_cfg, store):
    stopped = _run_stopped_by_sigterm(run_cfg(*RESUME))  # digits' ~350 long-tailed samples: step 5 of epoch 2
    assert stopped.exit_code == 128 + signal.SIGTERM
    run_id, client = stopped.run_id, MlflowClient(store)
    killed = client.get_run(run_id)
    assert killed.info.status == "KILLED" and "SIGTERM" in killed.data.tags["error"]
    assert [m.step for m in client.get_metric_history(run_id, "val/ce")] == [1]
    saved = checkpoint.load(Path(killed.data.tags["checkpoint.path"]), run_id)["loop"]
    assert saved["epoch"] == 1 and saved["progress"]["steps"] > 0  # stopped after a step inside epoch 2
    assert "checkpoint" in {a.path for a in client.list_artifacts(run_id)}
    # the local file gone (another machine, a cleaned outputs/): resume reads the checkpoint artifact
    Path(killed.data.tags["checkpoint.path"]).unlink()

    resumed = run(run_cfg(*RESUME, f"trainer.resume={run_id}"))
    fresh = run(run_cfg(*RESUME))
    assert resumed.run_id == run_id
    after = client.get_run(run_id)
    assert after.info.status == "FINISHED" and "error" not in after.data.tags
    assert after.data.tags["resume.count"] == "1" and after.data.tags["resume.from_epoch"] == "1"
    assert _histories(client, run_id) == _histories(client, fresh.run_id)
    assert [m.step for m in client.get_metric_history(run_id, "val/ce")] == [1, 2, 3, 4]


@pytest.mark.parametrize("extra,at_call", [
    (("resampling=balanced_sampler",), 17),  # the balanced draws of the stopped epoch come back in the same order
    (("loss=ldam", "loss.drw_epoch=2"), 17),  # deferred re-weighting is on again in the resumed epoch 2
    # ~540 labeled samples, 18 penalty calls in epoch 1: stopped at step 5 of epoch 2, with its pseudo-labels
    (("imbalance=none", "ssl=pseudo_label", "ssl.warmup_epochs=1", "ssl.threshold=0.1"), 23),
    (("trainer.steps=25",), 17),  # a step budget: the resumed run ends at the same step, part-way through epoch 3
], ids=["balanced_sampler", "ldam_drw", "pseudo_label", "step_budget"])
def test_resume_mid_epoch_keeps_sampler_order_loss_schedule_and_pseudo_labels(run_cfg, store, extra, at_call):
    run_id = _run_stopped_by_sigterm(run_cfg(*RESUME, *extra), at_call).run_id
    client = MlflowClient(store)
    saved = checkpoint.load(Path(client.get_run(run_id).data.tags["checkpoint.path"]), run_id)["loop"]
    assert saved["epoch"] == 1 and saved["progress"]["steps"] > 0
    if "ssl=pseudo_label" in extra:
        assert len(saved["progress"]["pseudo"][0]) > 0  # the epoch was stopped with pseudo-labels in it
    run(run_cfg(*RESUME, *extra, f"trainer.resume={run_id}"))
    fresh = run(run_cfg(*RESUME, *extra))
    assert _histories(client, run_id) == _histories(client, fresh.run_id)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: run this file on a GPU machine")
def test_a_cuda_run_stopped_mid_epoch_resumes_to_the_result_of_an_uninterrupted_one(run_cfg, store):
    cfg = ("trainer.epochs=3", "trainer.patience=null", "regularization=dropout", "trainer.device=cuda",
           "trainer.deterministic=true")
    run_id = _run_stopped_by_sigterm(run_cfg(*cfg)).run_id
    run(run_cfg(*cfg, f"trainer.resume={run_id}"))
    fresh = run(run_cfg(*cfg))
    client = MlflowClient(store)
    resumed, expected = _histories(client, run_id), _histories(client, fresh.run_id)
    assert resumed.keys() == expected.keys() and client.get_run(run_id).info.status == "FINISHED"
    for key, history in expected.items():  # cuBLAS may round differently if CUDA started before determinism
        assert [s for s, _ in resumed[key]] == [s for s, _ in history]
        assert [v for _, v in resumed[key]] == pytest.approx([v for _, v in history], rel=1e-5, abs=1e-6), key


def test_resume_refuses_another_config_a_finished_run_and_an_unknown_id(run_cfg, store):
    with mock.patch.object(loop, "train_epoch", side_effect=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        run(run_cfg("trainer.epochs=2"))
    client = MlflowClient(store)
    killed = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                                order_by=["attributes.start_time DESC"], max_results=1)[0].info.run_id
    with pytest.raises(UserError, match=r"config differs from the run's \(optim.lr: 0.001 -> 0.01\)"):
        run(run_cfg("trainer.epochs=2", "optim.lr=0.01", f"trainer.resume={killed}"))
    # killed before its first checkpoint: it starts again at epoch 1, in the same run
    result = run(run_cfg("trainer.epochs=2", f"trainer.resume={killed}"))
    assert result.run_id == killed and client.get_run(killed).info.status == "FINISHED"
    with pytest.raises(UserError, match="already FINISHED"):
        run(run_cfg("trainer.epochs=2", f"trainer.resume={killed}"))
    with pytest.raises(UserError, match="no such run"):
        run(run_cfg("trainer.epochs=2", f"trainer.resume={'0' * 31 + 'a'}"))


def _latest_run(client: MlflowClient) -> str:
    return client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                              order_by=["attributes.start_time DESC"], max_results=1)[0].info.run_id


@pytest.mark.parametrize("stopped_in", ["trainer.data.prepare.prepare", "trainer.tracking.params.flatten"],
                         ids=["preparing data", "before logging its config"])
def test_a_run_stopped_before_its_first_checkpoint_says_so_and_resumes_from_the_start(run_cfg, store, capsys,
                                                                                       stopped_in):
    # stopped while preparing its data, the run had no data.fingerprint yet; its resume was once refused
    # with a false "the data differ", which also turned the KILLED run FAILED
    import trainer.run as run_module

    with mock.patch(stopped_in, side_effect=Interrupted(signal.SIGINT)), \
            pytest.raises(SystemExit) as exited:
        run_module.main(run_cfg(*RESUME))
    assert exited.value.code == 128 + signal.SIGINT
    client = MlflowClient(store)
    run_id = _latest_run(client)
    assert client.get_run(run_id).info.status == "KILLED"
    err = capsys.readouterr().err
    assert "before its first checkpoint" in err and f"trainer.resume={run_id}" in err

    resumed = run(run_cfg(*RESUME, f"trainer.resume={run_id}"))
    fresh = run(run_cfg(*RESUME))
    assert resumed.run_id == run_id and client.get_run(run_id).info.status == "FINISHED"
    assert _histories(client, run_id) == _histories(client, fresh.run_id)


def test_a_refused_resume_leaves_the_run_killed_and_its_checkpoint_where_it_was(run_cfg, store):
    from trainer.tracking import provenance

    run_id = _run_stopped_by_sigterm(run_cfg(*RESUME)).run_id
    client = MlflowClient(store)
    before = client.get_run(run_id)
    with mock.patch.object(provenance, "data_fingerprint", return_value="0" * 16), \
            pytest.raises(UserError, match="the data differ"):
        run(run_cfg(*RESUME, f"trainer.resume={run_id}"))
    after = client.get_run(run_id)
    assert after.info.status == "KILLED" and after.info.end_time == before.info.end_time
    for tag in ("error", "checkpoint.path"):
        assert after.data.tags[tag] == before.data.tags[tag], tag
    assert run(run_cfg(*RESUME, f"trainer.resume={run_id}")).run_id == run_id  # still resumable
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_local_checkpoint_of_another_run_falls_back_to_the_run_s_own_artifact(run_cfg, store):
    # two runs in one output folder: the later one's checkpoint replaced the earlier one's file
    first = _run_stopped_by_sigterm(run_cfg(*RESUME)).run_id
    second = _run_stopped_by_sigterm(run_cfg(*RESUME, "seed=1")).run_id
    client = MlflowClient(store)
    local = Path(client.get_run(first).data.tags["checkpoint.path"])
    local.write_bytes(Path(client.get_run(second).data.tags["checkpoint.path"]).read_bytes())
    assert checkpoint.owner(local) == second

    run(run_cfg(*RESUME, f"trainer.resume={first}"))
    fresh = run(run_cfg(*RESUME))
    assert client.get_run(first).info.status == "FINISHED"
    assert _histories(client, first) == _histories(client, fresh.run_id)


# ~135 steps an epoch: after the first checkpoint two epochs remain, ample time to stop it part-way
# (persist_every_s=0: a checkpoint after every epoch, however short)
CLI = ("imbalance=none", "trainer.batch_size=8", "trainer.epochs=3", "trainer.patience=null", "trainer.threads=1",
       "trainer.device=cpu", "trainer.persist_every_s=0")


def _start_cli_and_wait_for_a_checkpoint(tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *CLI], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("outputs/runs/*/*/checkpoint.pt")):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    return proc


def _only_run(tmp_path: Path) -> tuple[MlflowClient, str]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])
    assert len(client.get_metric_history(r.info.run_id, "val/ce")) < 3  # it really stopped part-way
    return client, r.info.run_id


def test_sigkill_leaves_a_checkpoint_that_resumes_to_the_result_of_an_uninterrupted_run(tmp_path):
    proc = _start_cli_and_wait_for_a_checkpoint(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    client, run_id = _only_run(tmp_path)
    assert client.get_run(run_id).info.status == "RUNNING"  # nothing could end it

    resumed = train_cli(*CLI, f"trainer.resume={run_id}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert client.get_run(run_id).info.status == "FINISHED"
    fresh = run(make_cfg(*CLI, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"))
    assert _histories(client, run_id) == _histories(client, fresh.run_id)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])  # Ctrl-C; the terminal closed, ssh lost
def test_ctrl_c_writes_a_checkpoint_ends_killed_and_prints_the_resume_command(tmp_path, signum):
    proc = _start_cli_and_wait_for_a_checkpoint(tmp_path)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    client, run_id = _only_run(tmp_path)
    r = client.get_run(run_id)
    assert proc.returncode == 128 + signum and r.info.status == "KILLED"
    assert f"interrupted by {signum.name}" in r.data.tags["error"] and "Traceback" not in stderr
    # the printed command works where the user stands: train.py by its path from outside the repository
    assert f"python {ROOT / 'train.py'} {' '.join(CLI)} trainer.resume={run_id}" in stderr
    assert checkpoint.load(Path(r.data.tags["checkpoint.path"]), run_id)["loop"]["epoch"] >= 1


def test_two_resumes_of_one_run_at_once_one_is_refused_and_the_other_finishes_without_duplicates(run_cfg, store,
                                                                                               tmp_path):
    run_id = _run_stopped_by_sigterm(run_cfg(*RESUME)).run_id
    # both processes start together; the one that claims the run first waits 8 s before training, so the other
    # reaches its claim while the run is held whatever the start-up times on a loaded machine
    wrapper = tmp_path / "slow_resume.py"
    wrapper.write_text(
        "import runpy, sys, time\n"
        "from trainer.tracking import resume\n"
        "real = resume.restore\n"
        "resume.restore = lambda *a, **k: (time.sleep(8), real(*a, **k))[1]\n"
        f"sys.argv = [{str(ROOT / 'train.py')!r}, *sys.argv[1:]]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(wrapper), "trainer.epochs=2", f"tracking.uri={store}", *RESUME,
            f"trainer.resume={run_id}"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    outs = [(rc, out, err) for out, err, rc in outs]
    assert sorted(rc for rc, _, _ in outs) == [0, 2], [err[-2000:] for _, _, err in outs]
    (_, _, refused), = [o for o in outs if o[0] == 2]
    assert f"run {run_id} is being continued by another process (pid " in refused
    assert refused.count("error:") == 1 and "Traceback" not in refused
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "FINISHED" and "error" not in client.get_run(run_id).data.tags
    for key in ("train/ce", "val/ce"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == [1, 2, 3, 4], key


def test_a_running_run_is_refused_unless_its_process_on_this_host_is_gone(store, tmp_path):
    from trainer.tracking import resume

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("ce-harness") or client.get_experiment(
        client.create_experiment("ce-harness"))
    host = __import__("socket").gethostname()
    cfg = make_cfg("trainer.epochs=2")

    def running(owner: str) -> str:
        return client.create_run(experiment.experiment_id, tags={resume.PROCESS: owner}).info.run_id

    alive = running(f"{os.getppid()}@{host}/")  # pytest's parent: alive, not this process
    with pytest.raises(UserError, match=f"run {alive} is being continued by another process \\(pid {os.getppid()}"):
        resume.find(store, alive, cfg, "c0ffee", tmp_path)
    elsewhere = running("123@another-host/456")
    with pytest.raises(UserError, match="(?s)cannot check.*scripts/orphans.py --run") as err:
        resume.find(store, elsewhere, cfg, "c0ffee", tmp_path)
    assert "pid 123 on host another-host" in str(err.value)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = running(f"{dead.stdout.strip()}@{host}/1")  # exited (or its pid reused: another start time)
    resumed = resume.find(store, gone, cfg, "c0ffee", tmp_path)  # stopped before its first checkpoint: starts over
    assert resumed.checkpoint is None
    resume.release(resumed.claim)
