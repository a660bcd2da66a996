"""normbench's fused-seeds sweeper, registered with Hydra (which takes plugins from the
hydra_plugins namespace). The code is in normbench/fused/sweeper.py."""

from normbench.fused import sweeper


class FusedSweeper(sweeper.FusedSweeper):
    """conf/hydra/sweeper/fused.yaml"""
