"""Fused seeds: the runs of one cell that differ only in ``seed`` trained as one stacked model
(python run.py -m hydra/sweeper=fused ...). :mod:`.run` runs them, :mod:`.stack` stacks them,
:mod:`.plan` says when not to, :mod:`.sweeper` groups a sweep's jobs."""
