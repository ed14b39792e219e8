"""What a user asks of a cluster, independent of where it runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from dask.utils import parse_bytes

from ..config import Settings

BACKENDS = ("gateway", "slurm", "pbs", "local")

# Settings a worker needs to read the lake exactly as the notebook does; the batch job's id also
# tags the cluster, so that the job's end can stop the clusters it started (jobs/runner.py).
LAKE_SETTINGS = ("lake", "storage_options", "catalog_url", "job_id")


class ClusterStartError(RuntimeError):
    """No cluster could be given: its options were refused, the backend is unreachable, or its
    workers did not start within the allowed time. Base of ``cluster()``'s deliberate errors."""


class ClusterOptionError(ClusterStartError, ValueError):
    """An option refused before anything starts; the message names it and what is accepted."""


class UnsupportedOption(ClusterOptionError):
    """An option that the chosen backend cannot honour (never silently dropped)."""


@dataclass(frozen=True)
class ClusterSpec:
    """The options of :func:`eosc_pangeo.compute.cluster`, validated once for every backend.

    Attributes
    ----------
    workers : int
        Workers to wait for before the cluster is returned (``adaptive[0]`` when adaptive).
    cores : int or None
        Cores (threads) per worker; None leaves the backend's or site's default.
    memory : int or None
        Bytes of memory per worker; None leaves the backend's or site's default.
    adaptive : tuple of int or None
        ``(minimum, maximum)`` workers for adaptive scaling, or None for a fixed size.
    image : str or None
        Software environment of scheduler and workers: a container image on Kubernetes, the
        path of a Python environment on local and HPC backends. None: the notebook's own.
    env : dict
        Environment variables for the workers, given by the user.
    idle_timeout : float or None
        Seconds without activity after which the cluster shuts itself down.
    """

    workers: int = 1
    cores: int | None = None
    memory: int | None = None
    adaptive: tuple[int, int] | None = None
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    idle_timeout: float | None = None

    @classmethod
    def from_user(
        cls,
        *,
        workers: int | None = None,
        cores: int | None = None,
        memory: int | str | None = None,
        adaptive: tuple[int, int] | None = None,
        image: str | None = None,
        env: dict[str, str] | None = None,
        idle_timeout: float | None = None,
    ) -> ClusterSpec:
        """Validate user-facing values (memory as ``"4GiB"`` or bytes) into a spec."""
        if workers is not None and adaptive is not None:
            raise ClusterOptionError(
                "give either workers=N (a fixed size) or adaptive=(min, max), not both"
            )
        if adaptive is not None:
            minimum, maximum = adaptive
            if not 0 <= minimum <= maximum or maximum < 1:
                raise ClusterOptionError(
                    f"adaptive=(min, max) needs 0 <= min <= max, max >= 1; got {adaptive}"
                )
            workers = minimum
        elif workers is None:
            workers = 1
        if workers < 0:
            raise ClusterOptionError(f"workers must be >= 0, got {workers}")
        if cores is not None and cores < 1:
            raise ClusterOptionError(f"cores must be >= 1, got {cores}")
        memory_bytes = parse_bytes(memory) if isinstance(memory, str) else memory
        if memory_bytes is not None and memory_bytes <= 0:
            raise ClusterOptionError(f"memory must be positive, got {memory!r}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ClusterOptionError(f"idle_timeout must be positive seconds, got {idle_timeout}")
        env = dict(env or {})
        for key, value in env.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ClusterOptionError(f"env must map str to str, got {key!r}: {value!r}")
        return cls(
            workers=workers,
            cores=cores,
            memory=memory_bytes,
            adaptive=tuple(adaptive) if adaptive is not None else None,
            image=image,
            env=env,
            idle_timeout=idle_timeout,
        )

    def worker_env(self, settings: Settings) -> dict[str, str]:
        """Environment of every worker: the lake settings of this notebook, then the user's own.

        Workers rebuild the same :class:`~eosc_pangeo.config.Settings` from these variables, so
        ``open_dataset`` and fsspec calls inside tasks reach the lake with the notebook's
        credentials, on every backend.
        """
        env = {}
        for name in LAKE_SETTINGS:
            value = getattr(settings, name)
            if value in (None, {}):
                continue
            env[f"EOSC_PANGEO_{name.upper()}"] = (
                json.dumps(value) if isinstance(value, dict) else str(value)
            )
        env.update(self.env)
        return env
