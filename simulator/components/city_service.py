"""A national service the municipalities subscribe to, and the checks a part makes on what reaches it over one segment.

The 電子申請 service and the J-LIS クラウド型バックアップセンター hold each subscribing city's rules and take a message
only from that city's named part, over the segment its profile names and, where it carries personal data, sealed; the
city's 申請管理システム checks its deliveries the same way. It must never accept an unknown caller or another segment.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from simulator.components.base import Component, Directory, Link
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode
from simulator.model.envelope import Envelope

__all__ = ["CityService", "require_network", "sealed_payload"]

R = TypeVar("R")


class CityService(Component, Generic[R]):
    """A service shared by the municipalities that subscribe to it, each with its own rules."""

    caller_part: ClassVar[str]  # the one part of a subscribing city that may call ("e_application" …)

    def __init__(self, party: str, conn: Any, security: MessageSecurity, directory: Directory) -> None:
        super().__init__(party, conn, security, directory)
        self.cities: dict[str, R] = {}  # municipality → what its profile claims of this service

    def add_city(self, municipality: str, rules: R) -> None:
        self.cities[municipality] = rules

    def subscriber(self, env: Envelope, control_id: str) -> tuple[str, R]:
        """The subscribing municipality a message comes from, and its rules; anyone else is refused."""
        municipality = env.sender.split(".")[0]
        rules = self.cities.get(municipality)
        if rules is None or env.sender != f"{municipality}.{self.caller_part}":
            raise self.refuse(
                RefusalCode.SOURCE_NOT_ALLOWED,
                control_id,
                f"{env.sender} は{self.name_ja}の利用団体の{self.caller_part}ではありません",
                f"{env.sender} is not the {self.caller_part} of a municipality subscribed to the {self.name_en}",
                field="sender",
            )
        return municipality, rules


def require_network(
    component: Component, link: Link, network: str, control_id: str, what_ja: str, what_en: str
) -> None:
    """``what`` arrives only over ``network``, the one segment the profile names."""
    if link.network != network:
        raise component.refuse(
            RefusalCode.SOURCE_NOT_ALLOWED,
            control_id,
            f"{what_ja}は{network}経由でのみ受け付けます（接続: {link.network}）",
            f"{what_en}: accepted only over {network}; this came over {link.network}",
            field="network",
        )


def sealed_payload(component: Component, env: Envelope, control_id: str, what_ja: str, what_en: str) -> dict[str, Any]:
    """The personal data a message carries, which must arrive sealed to the recipient."""
    if env.sealed is None:
        raise component.refuse(
            RefusalCode.NOT_ENCRYPTED,
            control_id,
            f"{what_ja}が暗号化されていません",
            f"{what_en} arrived unencrypted",
            field="sealed",
        )
    return component.security.unseal(env.sealed)
