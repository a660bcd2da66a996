"""Fused seeds: the runs of one cell that differ only in ``seed`` trained as one stacked model
(python run.py -m hydra/sweeper=fused ...). :mod:`.run` runs them, :mod:`.stack` stacks them,
:mod:`.plan` says when not to, :mod:`.sweeper` groups a sweep's jobs."""

# the config key of a fused job: its members' seeds (set by the sweeper, read by the job)
FUSED_KEY = "fused_seeds"
