"""A sweep (docs/design.md §3): Hydra's launchers and sweepers, the sweep-end report callback,
the fused sweeper and its job, and the status of a sweep's grid without training."""
