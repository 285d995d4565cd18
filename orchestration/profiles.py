"""Tenant profiles loaded once per run: the block and the clients built from it, by name.

``orchestration.clients.clients_for`` caches clients per process but loads the block again for
anyone who also needs the profile's settings (tenant id, policy); every load is one API read and
one ``prefect.block.m365-tenant.loaded`` event. A sweep or a watcher holds one ``ProfileClients``
and reads each profile's block once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from m365 import M365Clients, build_clients
from m365.retry import RetryPolicy
from orchestration.blocks import M365Tenant
from orchestration.clients import load_tenant


@dataclass(frozen=True)
class LoadedProfile:
    profile: M365Tenant
    clients: M365Clients


class ProfileClients:
    """The profiles (blocks) a run has loaded and their clients; thread-safe.

    ``retry_policy`` and ``max_read_timeout`` tune the clients for the caller (the watcher
    wants short calls it can give up on; the sweep keeps the defaults).
    """

    def __init__(
        self, *, retry_policy: RetryPolicy | None = None, max_read_timeout: float | None = None
    ) -> None:
        self._retry_policy = retry_policy
        self._max_read_timeout = max_read_timeout
        self._lock = threading.Lock()
        self._loaded: dict[str, LoadedProfile] = {}
        self.block_reads = 0

    def load(self, name: str) -> LoadedProfile:
        """The profile and its clients, reading the block only the first time."""
        with self._lock:
            found = self._loaded.get(name)
        if found is not None:
            return found
        profile = load_tenant(name)  # raises UnknownTenantProfile; outside the lock (I/O)
        config = profile.to_config()
        if self._max_read_timeout is not None and config.read_timeout > self._max_read_timeout:
            config = config.model_copy(update={"read_timeout": self._max_read_timeout})
        loaded = LoadedProfile(profile, build_clients(config, retry_policy=self._retry_policy))
        with self._lock:
            self.block_reads += 1
            return self._loaded.setdefault(name, loaded)

    def clients(self, name: str) -> M365Clients:
        return self.load(name).clients

    def forget(self, name: str) -> None:
        """Read the block again next time (it was edited, or its credentials stopped working)."""
        with self._lock:
            self._loaded.pop(name, None)
