"""Loopback TCP ports that only one account may connect to, by netfilter's owner match.

On one machine every local account can open any loopback port, and dask-gateway serves a
cluster's dashboard to any request that reaches it (at the scheduler's own port, and at the
gateway's HTTP proxy under ``/clusters/<name>/``): a user who scans loopback would find other
users' dashboards. A :class:`LoopbackFence` keeps such ports for the platform's own account
(root, which runs the gateway, its proxy and the dashboards' gate): connections from any other
account are refused (a TCP reset, as from a closed port). For each port it holds one rule::

    iptables -I OUTPUT -o lo -p tcp --syn --dport PORT -m owner ! --uid-owner UID
             -m comment --comment eosc-pangeo/LABEL/NAME -j REJECT --reject-with tcp-reset

``LABEL`` names the platform (a digest of its state directory), so that platforms on one
machine (parallel test runs) never touch each other's rules; ``NAME`` names what the port is
(a cluster, the gateway's proxy). Rules go first in ``OUTPUT`` (``-I``): a machine's own
"accept everything on lo" rule would otherwise come before them. Only new connections
(``--syn``) are matched, so that the replies of the port's server, whoever runs it, pass.

The rules are managed through the ``iptables`` command (its nf_tables or legacy back end
alike), which needs root; without it, or without netfilter, :meth:`LoopbackFence.unavailable`
says why and the platform runs unfenced.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass

#: Every rule's comment starts with it, then ``<label>/<name>``.
COMMENT_PREFIX = "eosc-pangeo"
CHAIN = "OUTPUT"


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on loopback now."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class LoopbackFenceError(RuntimeError):
    """``iptables`` refused a change; the message has its command and its answer."""


@dataclass(frozen=True)
class LoopbackFence:
    """The loopback ports one platform keeps for account ``owner_uid``.

    Parameters
    ----------
    label : str
        Names the platform in its rules' comments (no ``/`` nor spaces).
    owner_uid : int
        The only account whose processes may connect to the fenced ports.
    """

    label: str
    owner_uid: int = 0

    def __post_init__(self) -> None:
        if not self.label or any(character in self.label for character in '/ \t\n"'):
            raise ValueError(f"a fence label has no '/', space or quote: {self.label!r}")

    def unavailable(self) -> str | None:
        """Why ports cannot be fenced here (None: they can)."""
        if os.geteuid() != 0:
            return "not running as root"
        if shutil.which("iptables") is None:
            return "no iptables command on PATH"
        try:
            _iptables("-S", CHAIN)
        except LoopbackFenceError as error:
            return str(error)
        return None

    def keep(self, name: str, port: int) -> None:
        """Let only the owner connect to loopback ``port`` (called ``name``); idempotent."""
        rule = self._rule(name, port)
        if not _iptables_ok("-C", CHAIN, *rule):
            _iptables("-I", CHAIN, "1", *rule)

    def release(self, name: str) -> None:
        """Open again the ports kept as ``name``."""
        for rule in self._rules_of(lambda rule_name: rule_name == name):
            _iptables("-D", CHAIN, *rule)

    def sweep(self, keep: frozenset[str] = frozenset()) -> list[str]:
        """Open every port this platform keeps, except those named in ``keep``; the names
        released. Nothing to do (and no error) where fences are unavailable."""
        if self.unavailable():
            return []
        swept = []
        for rule in self._rules_of(lambda rule_name: rule_name not in keep):
            _iptables("-D", CHAIN, *rule)
            swept.append(self._name_of(rule))
        return swept

    def kept(self) -> dict[str, list[int]]:
        """The ports kept now, by name."""
        ports: dict[str, list[int]] = {}
        for rule in self._rules_of(lambda rule_name: True):
            ports.setdefault(self._name_of(rule), []).append(int(_after(rule, "--dport")))
        return ports

    def _comment(self, name: str) -> str:
        return f"{COMMENT_PREFIX}/{self.label}/{name}"

    def _rule(self, name: str, port: int) -> list[str]:
        return [
            "-o", "lo", "-p", "tcp", "--syn", "--dport", str(port),
            "-m", "owner", "!", "--uid-owner", str(self.owner_uid),
            "-m", "comment", "--comment", self._comment(name),
            "-j", "REJECT", "--reject-with", "tcp-reset",
        ]  # fmt: skip

    def _name_of(self, rule: list[str]) -> str:
        return _after(rule, "--comment").removeprefix(self._comment(""))

    def _rules_of(self, wanted) -> list[list[str]]:
        """This platform's rules whose name is ``wanted``, as arguments after the chain."""
        rules = []
        for line in _iptables("-S", CHAIN).splitlines():
            words = shlex.split(line)
            if words[:2] != ["-A", CHAIN] or "--comment" not in words:
                continue
            comment = _after(words, "--comment")
            if comment.startswith(self._comment("")) and wanted(
                comment.removeprefix(self._comment(""))
            ):
                rules.append(words[2:])
        return rules


def _after(words: list[str], option: str) -> str:
    return words[words.index(option) + 1]


def _iptables_ok(*arguments: str) -> bool:
    return _run(arguments).returncode == 0


def _iptables(*arguments: str) -> str:
    result = _run(arguments)
    if result.returncode != 0:
        raise LoopbackFenceError(
            f"`iptables {shlex.join(arguments)}` failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def _run(arguments: tuple[str, ...]) -> subprocess.CompletedProcess:
    # -w: wait for the xtables lock that another platform's change may hold.
    try:
        return subprocess.run(
            ["iptables", "-w", *arguments], capture_output=True, text=True, check=False
        )
    except FileNotFoundError as error:
        raise LoopbackFenceError(f"no iptables command: {error}") from None
