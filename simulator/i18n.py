"""User-facing words in Japanese (default) and English: party names, message types, networks, outcomes.

One table per kind of thing, so the demo, the reports and the training viewer say the same thing the same
way. This module must never format numbers or dates for a locale beyond what it states here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from japanera import EraDate

__all__ = [
    "Lang",
    "exposure_label",
    "item_label",
    "message_label",
    "network_label",
    "outcome_label",
    "party_label",
    "travel_label",
    "wareki",
]

Lang = Literal["ja", "en"]

_COMPONENT = {
    "registry": ("既存住基システム", "resident registry"),
    "municipal_cs": ("市町村CS", "municipal CS"),
    "atena": ("団体内統合宛名システム", "unified addressee system"),
    "tax": ("税務システム", "tax system"),
    "ltc": ("介護保険システム", "long-term care insurance system"),
    "intermediate_server": ("中間サーバー", "intermediate server"),
    "prefectural_server": ("都道府県サーバ", "prefectural server"),
    "national_server": ("全国サーバ", "national server"),
    "core": ("情報提供ネットワークシステム", "NWS"),
    "portal": ("マイナポータル", "resident portal"),
    "staff": ("職員（端末操作）", "staff (terminal)"),
    "office_link": ("庁内連携システム", "intra-office linkage hub"),
    "nhi": ("国民健康保険システム", "national health insurance system"),
    "welfare": ("生活保護システム", "public assistance system"),
    "election": ("選挙システム", "elections system"),
    "sewer": ("下水道台帳システム", "sewerage ledger system"),
}
_ORG = {
    "kuwana": ("桑名市", "Kuwana"),
    "tsukuba": ("つくば市", "Tsukuba"),
    "sapporo": ("札幌市", "Sapporo"),
    "iizuka": ("飯塚市", "Iizuka"),
    "kurashiki": ("倉敷市", "Kurashiki"),
    "mie": ("三重県", "Mie"),
    "ibaraki": ("茨城県", "Ibaraki"),
    "hokkaido": ("北海道", "Hokkaido"),
    "fukuoka": ("福岡県", "Fukuoka"),
    "okayama": ("岡山県", "Okayama"),
    "jlis": ("J-LIS", "J-LIS"),
    "nws": ("", ""),
}
_MESSAGE = {
    "jukinet.identity_update": ("本人確認情報の更新", "identity information update"),
    "jukinet.identity_notify": ("本人確認情報の通知", "identity information notice"),
    "jukinet.identity_ack": ("受領通知", "acknowledgement"),
    "jukinet.my_number_request": ("個人番号の生成要求", "My Number generation request"),
    "jukinet.my_number_issued": ("個人番号の通知", "My Number issued"),
    "jukinet.basic4_search": ("4情報検索", "four-item search"),
    "jukinet.basic4_result": ("4情報検索結果", "four-item search result"),
    "jukinet.code_acquisition": ("処理通番と住民票コードの通知", "processing serial with resident code"),
    "jukinet.link_code": ("符号生成用情報の通知", "data for linkage-code generation"),
    "atena.register": ("宛名情報の登録", "addressee registration"),
    "atena.registered": ("宛名登録結果", "addressee registered"),
    "atena.replica_update": ("副本の登録", "replica update"),
    "atena.replica_ack": ("副本登録結果", "replica acknowledged"),
    "atena.business_query": ("情報照会依頼", "query request"),
    "atena.business_answer": ("照会結果", "query answer"),
    "atena.code_request": ("符号取得依頼", "linkage-code request"),
    "atena.code_status": ("符号取得状況", "linkage-code status"),
    "nws.serial_request": ("処理通番の発行依頼", "processing serial request"),
    "nws.serial_issued": ("処理通番の発行", "processing serial issued"),
    "nws.linkage_code_issued": ("符号の払出し", "linkage code delivered"),
    "nws.query": ("情報照会", "query"),
    "nws.permit": ("提供許可証", "provision permit"),
    "nws.provision_request": (
        "情報提供の求め（提供許可証・経路情報付き）",
        "provision request (with permit and route)",
    ),
    "nws.provision_reply": ("情報提供（照会者の鍵で暗号化）", "provision (encrypted to the requester)"),
    "nws.query_refused": ("照会の拒否", "query refused"),
    "nws.permission_list": ("照会許可用照合リストの配信", "permission list distribution"),
    "nws.receipt": ("受領", "receipt"),
    "portal.records_request": ("情報提供等記録の開示請求", "provision records request"),
    "portal.records_response": ("情報提供等記録の開示", "provision records disclosed"),
    "staff.command": ("職員の端末操作", "staff operation at a terminal"),
    "office.change": ("異動データ（庁内連携へ）", "change data (to the linkage hub)"),
    "office.transfer": ("庁内移転", "intra-office transfer"),
    "office.request": ("提供依頼", "provision request"),
    "jukinet.tenshutsu_info": ("転出証明書情報", "move-out certificate information"),
}
_NETWORK = {
    "office_lan": ("庁内ネットワーク", "office network"),
    "jukinet": ("住基ネット", "Juki-net"),
    "lgwan": ("行政専用ネットワーク（LGWAN等）", "government network (LGWAN)"),
    "internet": ("インターネット", "internet"),
}
_OUTCOME = {"allow": ("許可", "allowed"), "deny": ("拒否", "refused"), "hold": ("保留", "held")}
# Kinds of personal item a message can carry (traces and the training page's "who saw what" matrix).
_ITEM = {
    "my_number": ("個人番号", "My Number"),
    "resident_code": ("住民票コード", "resident code"),
    "basic4": ("4情報（氏名・住所・生年月日・性別）", "basic four (name, address, birth date, sex)"),
    "linkage_code": ("符号", "linkage code"),
    "link_code": ("連携用コード", "link code"),
    "atena_number": ("団体内統合宛名番号", "unified addressee number"),
    "replica": ("副本の内容", "replica contents"),
}
# How a field travelled in one message.
_TRAVEL = {
    "signed": ("署名付き平文（読めるが改ざんは検知される）", "signed plaintext (readable, tamper-evident)"),
    "encrypted": ("暗号化", "encrypted"),
    "plaintext": ("平文（署名なし）", "plaintext (unsigned)"),
    "absent": ("含まない", "absent"),
}
# What a system could see of an item over a run.
_EXPOSURE = {
    "plaintext": ("平文で見た", "plaintext"),
    "ciphertext": ("暗号文のみ", "ciphertext"),
    "never": ("見ていない", "never"),
}


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang == "ja" else pair[1]


def party_label(party: str, lang: Lang = "ja") -> str:
    """'kuwana.registry' → '桑名市 既存住基システム'; 'platform.intermediate_server.kuwana' → '桑名市 中間サーバー'."""
    parts = party.split(".")
    if (parts[0] == "platform" and len(parts) == 3) or (parts[0] == "jlis" and len(parts) == 3):
        org, component = parts[2], parts[1]
    elif len(parts) == 2:
        org, component = parts
    else:
        org, component = "", parts[0]
    org_name = _pick(_ORG[org], lang) if org in _ORG else org
    comp_name = _pick(_COMPONENT[component], lang) if component in _COMPONENT else component
    if parts[0] == "jlis":
        return f"J-LIS {comp_name}" + (
            f"（{org_name}）" if lang == "ja" and len(parts) == 3 else f" ({org_name})" if len(parts) == 3 else ""
        )
    return f"{org_name} {comp_name}".strip()


def message_label(message_type: str, lang: Lang = "ja") -> str:
    return _pick(_MESSAGE[message_type], lang) if message_type in _MESSAGE else message_type


def network_label(network: str, lang: Lang = "ja") -> str:
    return _pick(_NETWORK[network], lang) if network in _NETWORK else network


def outcome_label(outcome: str, lang: Lang = "ja") -> str:
    return _pick(_OUTCOME[outcome], lang) if outcome in _OUTCOME else outcome


def item_label(item: str, lang: Lang = "ja") -> str:
    return _pick(_ITEM[item], lang) if item in _ITEM else item


def travel_label(travel: str, lang: Lang = "ja") -> str:
    return _pick(_TRAVEL[travel], lang) if travel in _TRAVEL else travel


def exposure_label(exposure: str, lang: Lang = "ja") -> str:
    return _pick(_EXPOSURE[exposure], lang) if exposure in _EXPOSURE else exposure


def wareki(value: date | datetime) -> str:
    """A date in the Japanese era calendar, e.g. 令和8年11月24日."""
    day = value.date() if isinstance(value, datetime) else value
    era_date = EraDate.from_date(day)
    era_year = int(era_date.strftime("%-Y"))
    year = "元" if era_year == 1 else str(era_year)  # the first year of an era is written 元年
    return f"{era_date.strftime('%-K')}{year}年{day.month}月{day.day}日"
