"""Installs 電子申請, 外部SaaS and ガバメントクラウド parts in every world (simulator.components.eapp_saas_cloud).

Only what each municipality's profile data claims (scenarios/data/eapp_saas_cloud.yaml) is added. This module must
never hold logic of its own.
"""

from __future__ import annotations

from simulator.components.eapp_saas_cloud import install

__all__ = ["install"]
