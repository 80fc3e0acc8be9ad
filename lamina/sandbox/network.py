"""Outbound networking for sandboxes: egress through the host, and nothing else.

A sandbox is born with a network namespace holding only loopback (its Runtime API listener).
With `outbound`, it also gets a veth pair: `eth0` inside on a /30 of 169.254.128.0/17 (link-local,
never routed beyond the host) and a default route through the host end. One nftables table per
server then:
- masquerades the sandboxes' traffic out of the host's interfaces (egress, as a function
  outside a VPC has on Lambda);
- drops anything from a sandbox to the host itself (so Lamina's API and every host service),
  to loopback, and to another sandbox.
The table, and IP forwarding if this server had to turn it on (and no other server's table is
left), are undone by `close()`. Address slots are leased host-wide (`leases.py`), so several
servers on one host never hand out the same address.
Everything here runs as root (`ip`, `nft`, `nsenter`), off the event loop.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from lamina.sandbox.leases import HostLeases

POOL = ipaddress.ip_network("169.254.128.0/17")
SLOT_LOCKS = Path("/run/lamina/net")
_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class NetworkError(Exception):
    """Outbound networking cannot be set up on this host (with the reason)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    host_ifname: str
    host_address: str
    sandbox_address: str


class OutboundNetwork:
    """Created lazily by the first outbound sandbox; `close()` removes what it added."""

    def __init__(self) -> None:
        self._tag = f"lmn{os.getpid()}"
        self._table = f"lamina_{os.getpid()}"
        self._counter = itertools.count()
        # /30 slots of POOL, leased host-wide: two servers' sandboxes never share an address.
        self._slots: HostLeases | None = None
        self._lock = threading.Lock()
        self._ready = False
        self._forward_was: str | None = None
        self._ip = shutil.which("ip")
        self._nft = shutil.which("nft")
        self._nsenter = shutil.which("nsenter")

    @staticmethod
    def check() -> None:
        missing = [tool for tool in ("ip", "nft", "nsenter") if shutil.which(tool) is None]
        if missing:
            raise NetworkError(f"outbound networking needs {', '.join(missing)} (Debian: iproute2, nftables, util-linux)")
        if os.geteuid() != 0:
            raise NetworkError("outbound networking needs root (veth pairs, nftables, IP forwarding)")

    def _prepare(self) -> None:
        if self._ready:
            return
        self.check()
        self._forward_was = _FORWARD.read_text().strip()
        if self._forward_was != "1":
            _FORWARD.write_text("1")
        rules = f"""
table inet {self._table} {{
    chain input {{
        type filter hook input priority -10; policy accept;
        iifname "{self._tag}*" ct state established,related accept
        iifname "{self._tag}*" drop
    }}
    chain forward {{
        type filter hook forward priority -10; policy accept;
        iifname "{self._tag}*" oifname "{self._tag}*" drop
        iifname "{self._tag}*" ip daddr {{ 127.0.0.0/8, 169.254.0.0/16 }} drop
        oifname "{self._tag}*" ct state established,related accept
        oifname "{self._tag}*" drop
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        ip saddr {POOL} oifname != "{self._tag}*" masquerade
    }}
}}
"""
        _run([str(self._nft), "-f", "-"], stdin=rules)
        self._ready = True

    def attach(self, pid: int) -> Link:
        """Give the network namespace of `pid` an eth0 with a default route through the host."""
        with self._lock:
            self._prepare()
            if self._slots is None:
                self._slots = HostLeases(first=1, count=POOL.num_addresses // 4 - 1, lock_dir=SLOT_LOCKS,
                                         what="sandbox network address")  # fmt: skip
            try:
                slot = self._slots.acquire()
            except RuntimeError as exc:
                raise NetworkError(str(exc)) from exc
            n = next(self._counter)
        base = POOL.network_address + 4 * slot
        host_addr, sandbox_addr = str(base + 1), str(base + 2)
        host_if, peer_if = f"{self._tag}h{n}", f"{self._tag}s{n}"
        try:
            _run([str(self._ip), "-batch", "-"], stdin=(
                f"link add {host_if} type veth peer name {peer_if}\n"
                f"link set {peer_if} netns {pid}\n"
                f"addr add {host_addr}/30 dev {host_if}\n"
                f"link set {host_if} up\n"
            ))  # fmt: skip
            _run([str(self._nsenter), f"--net=/proc/{pid}/ns/net", str(self._ip), "-batch", "-"], stdin=(
                f"link set {peer_if} name eth0\n"
                f"addr add {sandbox_addr}/30 dev eth0\n"
                "link set eth0 up\n"
                f"route add default via {host_addr}\n"
            ))  # fmt: skip
        except NetworkError:
            self.detach(Link(host_ifname=host_if, host_address=host_addr, sandbox_address=sandbox_addr))
            raise
        return Link(host_ifname=host_if, host_address=host_addr, sandbox_address=sandbox_addr)

    def detach(self, link: Link) -> None:
        """Remove the pair (if the namespace's end did not take it along already); free the slot."""
        subprocess.run([str(self._ip), "link", "del", link.host_ifname], capture_output=True)
        slot = (int(ipaddress.ip_address(link.host_address)) - int(POOL.network_address)) // 4
        with self._lock:
            if self._slots is not None:
                self._slots.release(slot)

    def close(self) -> None:
        if not self._ready:
            return
        subprocess.run([str(self._nft), "delete", "table", "inet", self._table], capture_output=True)
        if self._forward_was is not None and self._forward_was != "1" and not self._other_servers():
            _FORWARD.write_text(self._forward_was)
        self._ready = False

    def _other_servers(self) -> bool:
        """Whether another Lamina server's table is still there (it needs forwarding on)."""
        listed = subprocess.run([str(self._nft), "list", "tables"], capture_output=True, text=True).stdout
        return any(line.split()[-1].startswith("lamina_") for line in listed.splitlines() if line.strip())


def _run(argv: list[str], *, stdin: str) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise NetworkError(f"{os.path.basename(argv[0])} failed: {done.stderr.strip()}")


def host_nameservers() -> list[str]:
    """The host's DNS servers that a sandbox can reach (not the host's own loopback stubs)."""
    servers = []
    try:
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and not ipaddress.ip_address(parts[1]).is_loopback:
                servers.append(parts[1])
    except (OSError, ValueError):
        pass
    return servers
