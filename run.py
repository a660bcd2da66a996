"""normbench entry point.

python run.py norm=group batch=4
python run.py -m norm=batch,group batch=2,32
"""

import hydra
from omegaconf import DictConfig

from normbench.identity import register_resolvers

register_resolvers()  # before Hydra composes: conf/config.yaml uses them


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> str:
    # imported here, not above: `--help`, `--cfg` and Hydra's own errors then need no torch
    from normbench.runner import main as run_one

    return run_one(cfg)


if __name__ == "__main__":
    main()
