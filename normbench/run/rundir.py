"""Who may write in a run directory, and where run directories may be.

- One process at a time: an advisory lock (``fcntl.flock``) on the run directory and on
  ``<run dir>/.lock`` (which names the holder's pid), held for the whole run; a second process
  on the same directory stops at once with one line. The kernel drops the lock when its holder
  dies, however it dies, so a killed run never leaves a stale lock behind.
- No writes through symbolic links (normbench.files).
- One identity: a finished run of another config is never replaced without ``force=true``,
  and Hydra's record of the run (``.hydra/``) is written only once the directory is the run's.
- Inside ``results_dir`` (links followed): ``name`` is a relative path without ``..``, each
  cell's ``hydra.sweep.subdir`` stays in the sweep directory, and ``results_dir`` is a writable
  directory; checked by a Hydra callback (normbench.sweep.callbacks.OutputCheck) before Hydra creates
  any directory. A ``hydra.run.dir`` or ``hydra.sweep.dir`` given on the command line is the
  user's choice of where results go: it takes results_dir's place for that run or sweep.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from normbench.errors import ConfigError
from normbench.files import check_no_links, open_private
from normbench.run import record

LOCK = ".lock"


@contextlib.contextmanager
def held(run_dir: Path, name: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the block runs; ConfigError if another process holds it,
    or if the directory holds a symbolic link where a run writes (normbench.files).

    The lock is taken on the directory itself and on ``.lock`` (which names the holder's pid):
    deleting ``.lock`` while a run is alive does not let a second process in."""
    check_no_links(run_dir, "name", name)
    with contextlib.ExitStack() as locks:
        for path, flags in (
            (run_dir, os.O_RDONLY | os.O_DIRECTORY),
            (run_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW),
        ):
            try:
                fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
            except OSError as err:
                raise ConfigError("results_dir", run_dir, f"cannot write there ({err.strerror})") from None
            locks.callback(os.close, fd)  # closing releases the lock
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(
                    "name",
                    name,
                    f"{run_dir} is in use by another process ({holder(run_dir)}); "
                    "wait for it to end, or give this run another name=",
                ) from None
            except OSError:  # a file system without locks on directories (some NFS): .lock alone
                continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for the message above, in the other process
        yield


def holder(run_dir: Path) -> str:
    """Who holds ``run_dir``'s lock, from the pid its holder wrote in ``.lock``, checked alive."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return "pid unknown: its .lock was deleted"
    try:
        text = os.read(fd, 32).decode(errors="replace").strip()
    finally:
        os.close(fd)
    if not text.isdigit():
        return "pid unknown"
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return f"pid unknown: .lock names pid {text}, which has ended"
    except OSError:
        pass  # alive, another user's
    return f"pid {text}"


def check_owner(
    run_dir: Path, finished: dict[str, Any] | None, identity: str, force: bool, name: str
) -> None:
    """ConfigError when ``finished`` (the summary of a finished run in ``run_dir``) is another
    config's and ``force`` is off: two configs that differ only in keys left out of the
    directory name (``experiment``, say) would otherwise share it."""
    if finished is None or finished.get("identity") == identity or force:
        return
    recorded = finished.get("overrides")
    overrides = " ".join(map(str, recorded)) if isinstance(recorded, list) and recorded else "no overrides"
    raise ConfigError(
        "name",
        name,
        f"{run_dir} holds a finished run of another config ({overrides}; identity "
        f"{finished.get('identity')}); give this run another name= to keep both, or force=true to replace it",
    )


def record_hydra_config(run_dir: Path, cfg: Any, overrides: list[str] | None = None) -> None:
    """Hydra's record of the run (``.hydra/``: config, hydra and overrides YAML), written once
    the directory is this run's. Hydra itself would write it before the run starts, over the
    record of a finished run of another config; conf/config.yaml turns that off
    (``hydra.output_subdir: null``). Outside Hydra (tests calling runner.run) there is none.
    ``overrides``: the run's own, where the Hydra job ran several (normbench.run.fused)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.instance().cfg
    if overrides is not None:  # a fused member: its own job's record, not the fused job's
        hydra_cfg = member_hydra(hydra_cfg, overrides, run_dir)
    record = {"config.yaml": cfg, "hydra.yaml": hydra_cfg, "overrides.yaml": hydra_cfg.hydra.overrides.task}
    (run_dir / ".hydra").mkdir(exist_ok=True)
    for filename, node in record.items():
        with open_private(run_dir / ".hydra" / filename, "w") as f:
            f.write(OmegaConf.to_yaml(node))


def override_dirname(overrides: list[str], spec: Any) -> str:
    """Hydra's ``hydra.job.override_dirname`` of a job with ``overrides``, computed as Hydra
    computes it (``spec``: hydra.job.config.override_dirname)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return get_overrides_dirname(parsed, list(spec.exclude_keys), spec.item_sep, spec.kv_sep)


def member_hydra(hydra_cfg: Any, overrides: list[str], run_dir: Path) -> Any:
    """The Hydra config a job of ``overrides`` alone would have had, writing into ``run_dir``."""
    from omegaconf import OmegaConf

    member = OmegaConf.create(OmegaConf.to_container(hydra_cfg, resolve=False))  # not read-only
    member.hydra.overrides.task = list(overrides)
    member.hydra.job.override_dirname = override_dirname(overrides, member.hydra.job.config.override_dirname)
    member.hydra.runtime.output_dir = str(run_dir)
    return member


def check_name(name: Any) -> None:
    """``name`` becomes a path under results_dir: relative, not empty, no ``..``."""
    path = PurePath(str(name))
    if not path.parts or path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            "name", name, "must be a relative path inside results_dir without '..', e.g. name=my_sweep"
        )


def check_results_dir(results_dir: Path, key: str = "results_dir") -> None:
    """``results_dir`` (or the directory ``key`` gives) is, or can be made, a directory this
    process can write in."""
    existing = next(p for p in (results_dir, *results_dir.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(key, results_dir, f"{existing} is a file; give a directory")
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=results_dir):
            pass
    except OSError as err:
        raise ConfigError(
            key, results_dir, f"cannot write there ({err.strerror}); give a writable directory"
        ) from None


def check_inside(path: Path, results_dir: Path, key: str, root_key: str = "results_dir") -> None:
    """``path`` (a run or sweep directory) lies inside ``results_dir``, links followed: a link
    inside results_dir to elsewhere leads outside it."""
    inside = Path(os.path.realpath(path))
    root = Path(os.path.realpath(results_dir))
    if inside != root and root not in inside.parents:
        how = (
            "leads through a symbolic link outside" if _lexically_inside(path, results_dir) else "is outside"
        )
        raise ConfigError(key, path, f"{how} {root_key}={results_dir}; keep run directories inside it")


def _lexically_inside(path: Path, root: Path) -> bool:
    inside = Path(os.path.normpath(os.path.abspath(path)))
    top = Path(os.path.normpath(os.path.abspath(root)))
    return inside == top or top in inside.parents


def explicit(config: Any, key: str) -> bool:
    """Whether the user set the Hydra key ``key`` on the command line (``hydra.run.dir=...``)."""
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in config.hydra.overrides.hydra)


def check_output(config: Any, key: str, output_dir: str, name: Any = None) -> None:
    """The checks above on a composed config, as one line and exit 2: for a Hydra callback,
    which runs before Hydra creates the run or sweep directory. A directory the user chose
    with ``hydra.run.dir``/``hydra.sweep.dir`` is the root of its run's results, as
    results_dir is otherwise."""
    try:
        check_name(config.name if name is None else name)
        if explicit(config, key):
            check_results_dir(Path(output_dir), key)
        else:
            check_results_dir(Path(config.results_dir))
            check_inside(Path(output_dir), Path(config.results_dir), key)
    except ConfigError as err:
        exit_bad_input(err)


def check_sweep_subdirs(config: Any, jobs: list[list[str]]) -> None:
    """Each job's directory (hydra.sweep.subdir, resolved as Hydra resolves it for that job)
    lies inside the sweep directory, and no file stands in its place (Hydra would stop the sweep
    when it reached that cell): one line and exit 2 before Hydra makes any."""
    from omegaconf import OmegaConf

    sweep_dir = Path(str(config.hydra.sweep.dir))
    node = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    spec = node.hydra.job.config.override_dirname
    for job in jobs:
        node.hydra.job.override_dirname = override_dirname(job, spec)
        subdir = str(node.hydra.sweep.subdir)
        try:
            if PurePath(subdir).is_absolute() or ".." in PurePath(subdir).parts:
                raise ConfigError(
                    "hydra.sweep.subdir",
                    subdir,
                    "must be a relative path without '..' inside hydra.sweep.dir",
                )
            check_inside(sweep_dir / subdir, sweep_dir, "hydra.sweep.subdir", "hydra.sweep.dir")
            if (sweep_dir / subdir).exists() and not (sweep_dir / subdir).is_dir():
                raise ConfigError(
                    "hydra.sweep.dir",
                    sweep_dir,
                    f"{sweep_dir / subdir} is a file where the run directory of the cell "
                    f"{' '.join(job)} goes; move it away and rerun (finished cells are skipped)",
                )
        except ConfigError as err:
            exit_bad_input(err)


def exit_bad_input(err: ConfigError) -> None:
    print(f"error: {err}", file=sys.stderr, flush=True)
    sys.exit(record.EXIT_CODES[record.FAILED])
