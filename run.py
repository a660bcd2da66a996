"""normbench entry point.

python run.py norm=group batch=4
python run.py -m norm=batch,group batch=2,32

Exit codes: 0 done (a sweep: it ran to its end), 2 bad input or a failed run (one line saying
why), 3 diverged, 130 interrupted (Ctrl-C or SIGTERM; a sweep stops at its current cell).
"""

import atexit
import gc
import os
import sys
import traceback

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from normbench.errors import one_line, write_error
from normbench.files import disk_error
from normbench.run import interrupt, record
from normbench.run.identity import register_resolvers

register_resolvers()  # before Hydra composes: conf/config.yaml uses them
# The interpreter's last collection at exit walks every object torch, torch._dynamo and Hydra
# made (about 0.15 s of CPU in a short run); the process is ending, and what it would free
# (cycles) holds nothing to flush: files and writers are closed by the code that opened them.
atexit.register(gc.freeze)
HYDRA_MODE_CLASH = "Only one of --run, --multirun, --cfg, --info"  # hydra/_internal/utils.py


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> str:
    # imported here, not above: `--help`, `--cfg` and Hydra's own errors then need no torch
    from normbench.task import main as run_one

    freeze_imports()
    return run_one(cfg)


def freeze_imports() -> None:
    """Move what the imports made (torch, Hydra, normbench: modules, classes, functions, all
    kept until exit) out of the garbage collector's reach. Every full collection walks all
    tracked objects, and the optimizer's first step imports torch._dynamo, whose import runs
    several: without this a short run spends about 0.45 s of CPU walking torch's objects.
    Once per process: a sweep's later cells must not freeze the garbage of the earlier ones."""
    if not gc.get_freeze_count():
        gc.freeze()


def main_with_exit_codes() -> None:
    """Hydra prints its own errors and exits 1, whatever they are; let them through and give
    bad input (an unknown option, an unparsable override) and an unwritable results tree the
    exit code of bad input, 2."""
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of exiting 1
    interrupt.install()
    try:
        main()
        if record.SWEEP_FAILURES:  # each said in its own line as it failed
            n = len(record.SWEEP_FAILURES)
            print(
                f"error: the sweep ended with {n} failure(s) outside its runs (above); "
                "rerun it once fixed: finished cells are skipped",
                file=sys.stderr,
            )
            sys.exit(record.EXIT_CODES[record.FAILED])
    except KeyboardInterrupt:
        print("interrupted: stopped; the same command resumes (finished runs are skipped)", file=sys.stderr)
        sys.exit(record.EXIT_CODES[record.INTERRUPTED])
    except ValueError as err:
        # Hydra's own refusal of two modes at once (`-m --cfg job`) is a plain ValueError
        if not str(err).startswith(HYDRA_MODE_CLASH):
            raise
        print(
            f"error: {err}; run `python run.py --cfg job ...` without -m to see a cell's config",
            file=sys.stderr,
        )
        sys.exit(record.EXIT_CODES[record.FAILED])
    except (CompactHydraException, OSError) as err:
        # CompactHydraException: composition (an unknown group option, bad override syntax);
        # OSError: e.g. the results tree made read-only while a sweep writes there
        if full_error:
            traceback.print_exc()
        print(f"error: {error_message(err)}", file=sys.stderr)
        sys.exit(record.EXIT_CODES[record.FAILED])
    except RuntimeError as err:  # torch wraps a failed write (a full disk) in a RuntimeError
        if disk_error(err) is None:
            raise
        print(f"error: {error_message(disk_error(err))}", file=sys.stderr)
        sys.exit(record.EXIT_CODES[record.FAILED])


def error_message(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return write_error(err)
    cause = f" ({one_line(err.__cause__)})" if isinstance(err.__cause__, Exception) else ""
    return one_line(err) + cause  # Hydra's message spans lines (the options of a group)


if __name__ == "__main__":
    main_with_exit_codes()
