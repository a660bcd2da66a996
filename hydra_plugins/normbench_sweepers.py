"""normbench's fused-seeds sweeper, registered with Hydra (which takes plugins from the
hydra_plugins namespace). The code is in normbench/sweep/fused_sweeper.py."""

from normbench.sweep import fused_sweeper as sweeper


class FusedSweeper(sweeper.FusedSweeper):
    """conf/hydra/sweeper/fused.yaml"""
