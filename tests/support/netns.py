"""A private network namespace for the end-to-end stage.

livekit-rtc (libwebrtc) gathers no ICE candidates on loopback interfaces. On the host a
participant's media would therefore flow between livekit-server's 127.0.0.1 candidate and the
host's own non-loopback address. Inside a namespace of our own, with loopback and a veth pair
whose address exists only there, every packet of the stage stays inside the namespace.

`private_network()` moves the calling thread into a fresh namespace; every process and thread it
starts from then on (livekit-server, the sidecar, livekit-rtc's FFI threads) is created in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
# RFC 2544's benchmarking range; the address exists only inside the namespace.
VETH_ADDRESS = "198.18.0.1/24"
VETH, VETH_PEER = "am-e2e0", "am-e2e1"
_SETUP = (
    ("link", "set", "lo", "up"),
    ("link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER),
    ("addr", "add", VETH_ADDRESS, "dev", VETH),
    ("link", "set", VETH_PEER, "up"),
    ("link", "set", VETH, "up"),
)


class NetnsError(RuntimeError):
    """The private namespace could not be made (needs root: CAP_SYS_ADMIN and CAP_NET_ADMIN)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise NetnsError(f"{what} failed: {os.strerror(errno)} (errno {errno}); the end-to-end "
                         "stage runs in a network namespace of its own and needs root")


def current_namespace() -> str:
    """The calling thread's network namespace, e.g. `net:[4026531833]`."""
    return os.readlink("/proc/thread-self/ns/net")


@contextlib.contextmanager
def private_network() -> Iterator[str]:
    """Move the calling thread into a new network namespace; yields its name; moves back."""
    libc = _libc()
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            for args in _SETUP:
                try:
                    done = subprocess.run(["ip", *args], capture_output=True, text=True,
                                          check=False)
                except FileNotFoundError:
                    raise NetnsError("`ip` not found: install iproute2") from None
                if done.returncode != 0:
                    raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
            yield current_namespace()
        finally:
            _check(libc.setns(original, CLONE_NEWNET), "setns(original namespace)")
    finally:
        os.close(original)
