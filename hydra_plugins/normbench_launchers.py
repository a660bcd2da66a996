"""normbench's submitit and joblib launchers, registered with Hydra (which takes launchers only from the
hydra_plugins namespace; run.py's directory puts this one on the path). The code is in
normbench/sweep/launchers.py.
"""

from normbench.sweep import launchers


class SlurmLauncher(launchers.SlurmLauncher):
    """conf/hydra/launcher/slurm.yaml"""


class LocalLauncher(launchers.LocalLauncher):
    """conf/hydra/launcher/local.yaml"""


class JoblibLauncher(launchers.JoblibLauncher):
    """conf/hydra/launcher/parallel.yaml"""
