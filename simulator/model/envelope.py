"""The envelope every component-to-component message travels in, and the message types of the pipeline.

An envelope is what gets signed (JWS): routing header plus a non-personal ``body`` and, where the message
carries personal data, ``sealed``: a JWE compact string that only the intended reader can open.
This module must never sign, encrypt or validate; that is ``simulator.crypto``'s job.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Envelope", "MessageType"]


class MessageType(StrEnum):
    # 住基ネット side
    IDENTITY_UPDATE = "jukinet.identity_update"  # 本人確認情報の更新 (8 items), 既存住基 → 市町村CS
    IDENTITY_NOTIFY = "jukinet.identity_notify"  # 市町村CS → 都道府県サーバ → 全国サーバ
    IDENTITY_ACK = "jukinet.identity_ack"
    MY_NUMBER_REQUEST = "jukinet.my_number_request"  # 個人番号生成要求 (出生・初回記載)
    MY_NUMBER_ISSUED = "jukinet.my_number_issued"
    BASIC4_SEARCH = "jukinet.basic4_search"  # 4情報検索
    BASIC4_RESULT = "jukinet.basic4_result"
    CODE_ACQUISITION_NOTIFY = "jukinet.code_acquisition"  # (処理通番, 住民票コード) → 機構
    LINK_CODE_NOTIFY = "jukinet.link_code"  # 機構 → NWS: (処理通番, 機構が生成する連携用コード), never the 住民票コード
    TENSHUTSU_INFO = "jukinet.tenshutsu_info"  # 特例転出: 転出地CS → 転入予定地CS, the 転出証明書情報 (held, CS-017)
    WIDE_AREA_REQUEST = "jukinet.wide_area_request"  # 住民票の写しの広域交付: CS → 住基GW (off-hours cache)
    WIDE_AREA_REPLY = "jukinet.wide_area_reply"
    RELAY_MANIFEST = "juki.relay_manifest"  # 既存住基 → 住基GW: what it sent, for reconciliation (GW-003)
    RESIDENT_MASTER_QUERY = "juki.resident_master_query"  # 業務システム → 既存住基: 住民マスタ (JUKI-005)
    # 送付先情報 and the 個人番号カード管理システム (CS-015/016/022/023)
    DELIVERY_INFO = "jukinet.delivery_info"  # 送付先情報: 既存住基 → 市町村CS → 個人番号カード管理システム
    DELIVERY_ACK = "jukinet.delivery_ack"  # カード管理システム → CS: the 送付先情報ファイル was received
    IDENTITY_CHECK = "jukinet.identity_check"  # CS → 全国サーバ: 機構保存本人確認情報 of one 住民票コード
    IDENTITY_CHECK_REPLY = "jukinet.identity_check_reply"
    CARD_EVENT = "jukinet.card_event"  # CS → カード管理システム: 交付, 廃止, 回収, 一時停止, 一時停止解除, 返還
    # 団体内 (intra-municipal)
    ATENA_REGISTER = "atena.register"  # 宛名の異動データ取込
    ATENA_REGISTERED = "atena.registered"
    REPLICA_UPDATE = "atena.replica_update"  # 副本登録 via 宛名 → 中間サーバー
    REPLICA_ACK = "atena.replica_ack"
    BUSINESS_QUERY = "atena.business_query"  # 業務システム → 宛名 → 中間サーバー (情報照会依頼)
    BUSINESS_ANSWER = "atena.business_answer"
    CODE_REQUEST = "atena.code_request"  # 宛名 → 中間サーバー: 符号取得依頼
    CODE_STATUS = "atena.code_status"
    OFFICE_CHANGE = "office.change"  # 既存住基 → 庁内連携: 異動データ with a per-source sequence number
    OFFICE_TRANSFER = "office.transfer"  # 庁内連携 → 連携先システム: one 移転 along an approved route
    OFFICE_REQUEST = "office.request"  # 連携先システム → 庁内連携: 提供依頼 (on-request 移転)
    DEPENDANT_INQUIRY = "tax.dependant_inquiry"  # 住民税システム → 他市町村: 扶養照会 (GYOMU-003)
    DEPENDANT_ANSWER = "tax.dependant_answer"  # 他市町村 → 住民税システム: 扶養照会への回答
    # 番号制度 (中間サーバー ↔ NWS)
    SERIAL_REQUEST = "nws.serial_request"  # 処理通番の発行依頼
    SERIAL_ISSUED = "nws.serial_issued"
    LINKAGE_CODE_ISSUED = "nws.linkage_code_issued"  # 符号の払出し
    QUERY = "nws.query"  # 情報照会 (requester 中間サーバー → NWS)
    PERMIT = "nws.permit"  # 提供許可証: signed by NWS, addressed to the provider, single-use
    PROVISION_REQUEST = "nws.provision_request"  # NWS → provider 中間サーバー, with 提供許可証 and 経路情報
    PROVISION_REPLY = "nws.provision_reply"  # provider → NWS → requester, ciphertext to the requester
    QUERY_REFUSED = "nws.query_refused"
    PERMISSION_LIST = "nws.permission_list"  # 照会許可用照合リスト配信
    RECEIPT = "nws.receipt"  # acknowledgement that a hop accepted a message
    RECORDS_REQUEST = "portal.records_request"  # マイナポータル → NWS: the 情報提供等記録 about one person
    RECORDS_RESPONSE = "portal.records_response"
    # 電子申請 and backups (simulator/components/eapp.py, cloud.py)
    EAPP_FETCH = "eapp.fetch"  # 申請管理 (LGWAN接続端末) → サービス検索・電子申請機能: download the city's applications
    EAPP_DELIVERY = "eapp.delivery"  # サービス検索・電子申請機能 → 申請管理: the applications, sealed to the city
    BACKUP_UPLOAD = "backup.upload"  # the city's backup job → J-LIS クラウド型バックアップセンター (IP-VPN)


class Envelope(BaseModel):
    """The signed unit. ``body`` carries only non-personal data; personal data goes in ``sealed`` (JWE)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=8, max_length=64)
    type: MessageType
    sender: str = Field(min_length=1, max_length=128)
    recipient: str = Field(min_length=1, max_length=128)
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=64)
    body: dict[str, Any] = Field(default_factory=dict)
    sealed: str | None = None
