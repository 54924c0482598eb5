"""hydra/sweeper=ce_basic, the default sweeper: Hydra's basic sweeper that runs every job it can."""
