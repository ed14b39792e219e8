"""The Python environment users' notebook servers and Dask clusters run in.

Servers and clusters run as the users' own Unix accounts, so their interpreter and packages must
be readable by everyone. A clone under a mode-700 directory (root's home, ``mktemp -d``) hides
its ``.venv`` from them: every cluster then failed while starting. Here, when the running
environment is not reachable by others, a non-editable copy of the project is installed in a
world-readable place (``/opt/eosc-pangeo/envs`` by default) and kept in step with the source.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import eosc_pangeo

DEFAULT_ENVIRONMENTS_ROOT = Path("/opt/eosc-pangeo/envs")
#: Source checkout of the running package (None when installed from a wheel).
PROJECT_DIRECTORY = next(
    (p for p in Path(eosc_pangeo.__file__).resolve().parents if (p / "pyproject.toml").exists()),
    None,
)

# JupyterLab's settings that reach for the internet (news, update checks, the extension
# manager's PyPI search): offline they show errors and pop-ups, so they are off.
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}

# jupyter-lsp (a dependency of JupyterLab) scans every package's entry points and looks for
# some twenty language servers at every server start, about 0.25 s of CPU, yet the environment
# ships no language server and JupyterLab's LSP features are off unless a user turns them on.
# An image that adds a language server turns the extension on again.
SERVER_CONFIG = {"ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}}}

# JupyterLab launcher entries (jupyter-app-launcher): the hub's jobs page as a panel, whose
# results links download in the browser (hence the iframe's allow-downloads).
LAUNCHER_ENTRIES = [
    {
        "title": "Batch jobs",
        "description": "Your batch jobs (eosc-pangeo run): state, logs, results to download",
        # Expanded by the extension in the user's server: the hub's prefix ("/" by default).
        "source": "${JUPYTERHUB_BASE_URL}services/jobs/",
        "type": "url",
        "catalog": "EOSC Pangeo",
        "args": {
            "sandbox": [
                "allow-same-origin",
                "allow-scripts",
                "allow-downloads",
                "allow-forms",
                "allow-popups",
            ]
        },
    },
]


def readable_by_others(path: str | os.PathLike) -> bool:
    """True if any user can reach ``path``: every directory above it is world-searchable and it
    is world-readable (and searchable, for a directory)."""
    path = Path(path).resolve()
    for directory in path.parents:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return False
    mode = path.stat().st_mode
    needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & needed == needed


def _source_digest(project: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((project / "src").rglob("*.py")):
        digest.update(str(path.relative_to(project)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def user_environment(root: str | os.PathLike = DEFAULT_ENVIRONMENTS_ROOT) -> str:
    """The prefix of a Python environment that every user can run, with this project in it.

    The running environment if others can reach it and the package inside it; otherwise one
    under ``root``, named after ``pyproject.toml``'s digest (its dependencies), created on
    first use (about a minute) and refreshed (a few seconds) when the project's source changes.
    JupyterLab's offline settings are written into it either way.
    """
    package = Path(eosc_pangeo.__file__).parent
    if readable_by_others(sys.prefix) and readable_by_others(package):
        write_lab_overrides(sys.prefix)
        return sys.prefix
    if PROJECT_DIRECTORY is None:
        raise RuntimeError(
            f"{sys.prefix} is not readable by other users and eosc_pangeo is not installed from "
            "a source checkout: install it in a world-readable environment (e.g. under /opt)"
        )
    project = PROJECT_DIRECTORY
    key = hashlib.sha256((project / "pyproject.toml").read_bytes()).hexdigest()[:12]
    root = Path(root)
    prefix = root / f"py{sys.version_info.major}{sys.version_info.minor}-{key}"
    previous = os.umask(0o022)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for directory in (root, *root.parents):
            if directory == Path("/"):
                break
            directory.chmod(directory.stat().st_mode | 0o755)
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (tests, `make up`)
            _install(project, prefix)
    finally:
        os.umask(previous)
    write_lab_overrides(str(prefix))
    return str(prefix)


def _install(project: Path, prefix: Path) -> None:
    python = prefix / "bin" / "python"
    stamp = prefix / ".eosc-pangeo-source.json"
    source = _source_digest(project)
    log = prefix.parent / f"{prefix.name}.install.log"

    def run(*command: str) -> None:
        with open(log, "a") as output:
            result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False)
        if result.returncode:
            raise RuntimeError(
                f"installing the users' Python environment {prefix} failed "
                f"({' '.join(command)}); see {log}"
            )

    if not python.exists():
        run(sys.executable, "-m", "venv", str(prefix))
        run(str(python), "-m", "pip", "install", "--quiet", f"{project}[hub]")
    elif stamp.exists() and json.loads(stamp.read_text()).get("source") == source:
        return
    else:  # dependencies unchanged (same pyproject.toml): the project alone is reinstalled
        run(
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--force-reinstall",
            str(project),
        )
    stamp.write_text(json.dumps({"source": source, "project": str(project)}))


def launcher_directory(prefix: str | os.PathLike) -> Path:
    """The folder of the environment at ``prefix`` that holds JupyterLab's launcher entries.

    It is not one of Jupyter's data folders: jupyter-app-launcher reads it only where
    ``JUPYTER_APP_LAUNCHER_PATH`` names it, which the hub sets when it runs the jobs service
    (:func:`eosc_pangeo.platform.hub.add_jobs_service`), so that no tile leads to a missing page.
    """
    return Path(prefix) / "share" / "eosc-pangeo" / "launcher"


def write_lab_overrides(prefix: str) -> None:
    """JupyterLab's settings overrides, the servers' configuration and launcher entries for the
    environment at ``prefix`` (see LAB_OVERRIDES, SERVER_CONFIG, LAUNCHER_ENTRIES). The image
    runs it too (images/Containerfile)."""
    server_config = Path(prefix) / "etc" / "jupyter" / "jupyter_server_config.d"
    # jupyter-app-launcher reads YAML; JSON is YAML.
    for path, content in (
        (Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json", LAB_OVERRIDES),
        # Jupyter reads a .d folder in name order, the last word winning: after the packages'.
        (server_config / "zz-eosc-pangeo.json", SERVER_CONFIG),
        (launcher_directory(prefix) / "jp_app_launcher_eosc_pangeo.yaml", LAUNCHER_ENTRIES),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(content, indent=2)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    # Environments written before the tile moved (2026-12-06) keep it in Jupyter's data folder,
    # where it shows twice beside the new one, and also without the jobs service.
    (
        Path(prefix)
        / "share"
        / "jupyter"
        / "jupyter_app_launcher"
        / "jp_app_launcher_eosc_pangeo.yaml"
    ).unlink(missing_ok=True)
