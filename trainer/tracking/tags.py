"""Tags a run writes for the harness to read back later (a resume, the end of a sweep), named once."""

CHECKPOINT = "checkpoint.path"  # where the run writes its checkpoint; a resumed run moves it to its own output folder
PROCESS = "process"  # pid@host/start of the process training the run: is a RUNNING run still trained?
SWEEP_JOB = "sweep.job"  # a sweep's child run: the number of the job it ran (hydra.job.num), in the order of the sweep
PARAMS_CUT = "params.cut"  # the params whose values MLflow cut at 6,000 characters (the whole are in config.yaml)
