"""One run's lifecycle (docs/design.md §2): build, lock, resume, train, measure, write, finish.
:mod:`.runner` drives it top to bottom; :mod:`.fused` steps several seeds' members at once."""
