"""Train one experiment composed by Hydra from conf/: python train.py loss=weighted seed=1"""
import warnings

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from trainer.run import main as run_main

    return run_main(cfg)


if __name__ == "__main__":
    import sys

    from trainer.config import check_command_line
    from trainer.errors import UserError
    from trainer.runtime.shutdown import run_then_exit

    try:  # a key Hydra cannot set (trainer.epoch=3): one line instead of Hydra's "not in struct" and exit 1
        check_command_line(sys.argv[1:])
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

    # conf/hydra/launcher/ presets take the plugins' own names (hydra/launcher=joblib); Hydra 1.3 still merges
    # them onto the plugins' schemas of those names, and warns on every command that it is deprecated
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema")

    run_then_exit(main)  # the same exit codes, without the 2 s Python spends tearing torch and mlflow down
