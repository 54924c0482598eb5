"""The settings of the ce_basic sweeper (hydra.sweeper.*): those of Hydra's basic sweeper, registered as
hydra/sweeper=ce_basic, the default of conf/config.yaml.

No `from __future__ import annotations`: Hydra loads this module outside sys.modules, and OmegaConf reads the
field types of the dataclass."""
from dataclasses import dataclass
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class CeBasicSweeperConf:
    _target_: str = "hydra_plugins.ce_basic_sweeper.sweeper.CeBasicSweeper"
    max_batch_size: Optional[int] = None  # jobs handed to the launcher at once; null: all of them
    params: Optional[Dict[str, str]] = None  # swept settings, as on the command line (key: a,b,c)


ConfigStore.instance().store(group="hydra/sweeper", name="ce_basic", node=CeBasicSweeperConf, provider="ce-harness")
