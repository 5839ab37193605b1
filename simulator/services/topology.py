"""Which service hosts which parties, and where each service listens and is reached (the address book).

A service is one organisation's store and every component that keeps its state there: ``kuwana`` (既存住基,
市町村CS, 宛名, 業務), ``jlis``, ``nws``, ``portal``, and one ``platform.{m}`` per 中間サーバー tenant, so tenants
are separate services with separate credentials. Addresses default to 127.0.0.1 and consecutive ports from a
base; a JSON or YAML file can place services on other hosts. This module must never open a socket.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import InputError
from simulator.world import World

__all__ = ["DEFAULT_PORT_BASE", "SNI_SUFFIX", "ServiceSpec", "Topology"]

DEFAULT_PORT_BASE = 8600
#: Each service's TLS certificate names it as ``{service}.jukisim.test`` (RFC 2606 test TLD); senders ask for that
#: name in SNI and check it, so a message reaches the organisation it is addressed to or is never sent.
SNI_SUFFIX = "jukisim.test"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # "kuwana", "platform.kuwana", "nws", …
    organisation: str  # the store's name, which is the service's name
    parties: tuple[str, ...]
    bind: str = LOOPBACK
    port: int = 0
    host: str = LOOPBACK  # where peers and load tools reach it

    @property
    def sni(self) -> str:
        return f"{self.name}.{SNI_SUFFIX}"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "parties": list(self.parties), "bind": self.bind, "port": self.port,
                "host": self.host, "url": self.url, "sni": self.sni}


@dataclass(frozen=True)
class Topology:
    services: tuple[ServiceSpec, ...]
    _by_party: dict[str, ServiceSpec] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for service in self.services:
            for party in service.parties:
                self._by_party[party] = service

    @classmethod
    def of_world(
        cls, world: World, *, port_base: int = DEFAULT_PORT_BASE, overrides: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Topology:
        """One service per store of ``world``, in a stable order; ports from ``port_base`` unless overridden."""
        by_store: dict[str, list[str]] = {}
        for party, component in world.components.items():
            org = next((o for o, conn in world.stores.items() if conn is component.conn), None)
            if org is None:
                raise InputError("world", f"component {party} keeps no store of this world")
            by_store.setdefault(org, []).append(party)
        names = sorted(by_store, key=_order)
        services = []
        for index, name in enumerate(names):
            spec = ServiceSpec(name, name, tuple(sorted(by_store[name])), port=port_base + index)
            extra = dict((overrides or {}).get(name, {}))
            unknown = set(extra) - {"bind", "port", "host"}
            if unknown:
                raise InputError(f"services.{name}", f"unknown keys {sorted(unknown)}; allowed: bind, port, host")
            if "port" in extra and not (isinstance(extra["port"], int) and 0 < extra["port"] < 65536):
                raise InputError(f"services.{name}.port", "must be an integer from 1 to 65535")
            services.append(replace(spec, **{k: v for k, v in extra.items()}))
        unknown_services = set(overrides or {}) - set(names)
        if unknown_services:
            raise InputError("services", f"no such services in this world: {sorted(unknown_services)}")
        return cls(tuple(services))

    def service(self, name: str) -> ServiceSpec:
        for service in self.services:
            if service.name == name:
                return service
        raise InputError("service", f"no service {name!r}; known: {', '.join(s.name for s in self.services)}")

    def service_of(self, party: str) -> ServiceSpec | None:
        return self._by_party.get(party)

    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def as_dict(self) -> dict[str, Any]:
        return {"services": [s.as_dict() for s in self.services]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Topology:
        services = []
        for raw in data.get("services", []):
            services.append(ServiceSpec(str(raw["name"]), str(raw["name"]), tuple(raw["parties"]), str(raw["bind"]),
                                        int(raw["port"]), str(raw["host"])))
        return cls(tuple(services))


def load_overrides(path: Path | None) -> dict[str, dict[str, Any]]:
    """Read a placement file: ``{"services": {"nws": {"host": "10.0.0.5", "bind": "0.0.0.0", "port": 8601}}}``."""
    if path is None:
        return {}
    text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("services", {}), dict):
        raise InputError(str(path), "must be a mapping with a 'services' mapping of service name to bind/port/host")
    services = data.get("services", {})
    return {str(k): dict(v or {}) for k, v in services.items()}


def _order(name: str) -> tuple[int, str]:
    # NWS, J-LIS, the portal, then the platform tenants, then the municipalities: a port list reads top-down.
    rank = {"nws": 0, "jlis": 1, "portal": 2}
    if name in rank:
        return rank[name], name
    return (3, name) if name.startswith("platform.") else (4, name)
