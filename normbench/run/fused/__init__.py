"""Fused seeds: the runs of one cell that differ only in ``seed``, stepped together as one
stacked model inside the one run lifecycle (python run.py -m hydra/sweeper=fused ...).
:mod:`.stepper` steps them, :mod:`.stack` stacks them, :mod:`.layout` says how each module
stacks, :mod:`.plan` says when not to, :mod:`.logs` gives each member its own run.log. The
sweep's side (grouping a sweep's jobs, a fused job's members) is in normbench/sweep/."""

# the config key of a fused job: its members' seeds (set by the sweeper, read by the job)
FUSED_KEY = "fused_seeds"
