"""LocalCluster backend: worker processes on this machine (a laptop, a notebook server)."""

from __future__ import annotations

import ast
import os
import sys

import dask.config
from distributed import LocalCluster

from ..config import Settings
from .spec import ClusterSpec, ClusterStartError, UnsupportedOption

MAIN_GUARD_HELP = (
    "https://docs.python.org/3/library/multiprocessing.html#the-spawn-and-forkserver-start-methods"
)


def start_local(spec: ClusterSpec, settings: Settings) -> LocalCluster:
    """Start a LocalCluster with no workers yet; :func:`~eosc_pangeo.compute.cluster` scales it."""
    if spec.image is not None and os.path.realpath(spec.image) != os.path.realpath(sys.prefix):
        raise UnsupportedOption(
            f"backend 'local' runs workers in this notebook's Python environment ({sys.prefix}); "
            f"it cannot use image={spec.image!r}. Use backend='gateway', 'slurm' or 'pbs' for "
            "another image or environment."
        )
    check_workers_can_start()
    scheduler_kwargs = {}
    if spec.idle_timeout is not None:
        scheduler_kwargs["idle_timeout"] = f"{spec.idle_timeout}s"
    return LocalCluster(
        n_workers=0,
        processes=True,
        threads_per_worker=spec.cores or 1,
        # "auto" splits the machine's memory between workers, as LocalCluster does by default.
        memory_limit=spec.memory if spec.memory is not None else "auto",
        host="127.0.0.1",
        # A random port: several clusters (tests, notebooks of one server) coexist.
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs=scheduler_kwargs,
        # Passed to each Nanny, which starts its worker process with these variables.
        env=spec.worker_env(settings),
    )


def check_workers_can_start() -> None:
    """Fail at once when spawned worker processes would die at start-up.

    Dask starts local workers with multiprocessing's ``spawn``: each new process first re-runs
    the main script (as multiprocessing's ``get_preparation_data`` decides). A script that calls
    ``cluster()`` outside ``if __name__ == "__main__":`` then starts a cluster inside each worker,
    which fails, and one read from standard input cannot be re-run at all; otherwise the caller
    would wait for the whole start timeout and learn nothing.
    """
    if dask.config.get("distributed.worker.multiprocessing-method") == "fork":
        return
    main = sys.modules["__main__"]
    path = getattr(main, "__file__", None)
    module = getattr(main.__spec__, "name", None) or ""
    if path is None or module.endswith("__main__") or os.path.basename(path) == "ipython":
        return  # python -c, packages' __main__, interactive sessions: nothing is re-run
    if not os.path.isfile(path):
        raise ClusterStartError(
            "backend 'local' starts workers as new Python processes that re-run the main script, "
            "but this one was read from standard input: save it to a file and run it as "
            'python script.py, with its code under if __name__ == "__main__": '
            f"(see {MAIN_GUARD_HELP})"
        )
    line = _unguarded_call_line(main, path)
    if line is not None:
        raise ClusterStartError(
            f"backend 'local' starts workers as new Python processes that re-run {path}, line "
            f"{line} of which starts a cluster: each worker would start its own and die. Put the "
            'script\'s code under if __name__ == "__main__": (see '
            f"{MAIN_GUARD_HELP})"
        )


def _unguarded_call_line(main, path: str) -> int | None:
    """The line of the main script's top-level code that is calling us, if it is outside an
    ``if __name__ == "__main__":`` block (None when guarded, or not called from top level)."""
    frame = sys._getframe()
    # The script's own top-level code: in a notebook, cells run in __main__'s namespace too,
    # but from other files than __main__.__file__.
    while frame is not None and not (
        frame.f_globals is vars(main)
        and frame.f_code.co_name == "<module>"
        and os.path.realpath(frame.f_code.co_filename) == os.path.realpath(path)
    ):
        frame = frame.f_back
    if frame is None:
        return None
    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and _is_main_guard(node.test)
            and (node.lineno <= frame.f_lineno <= node.end_lineno)
        ):
            return None
    return frame.f_lineno


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )
