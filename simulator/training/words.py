"""Plain words for a trace: what one hop did, what was protected how, and why each control decided.

Written for clerks first (what happened, in everyday words), identifiers second (message type, control id,
citation). Shared by the terminal walk-through and the page, so both say the same thing. Labels of parties,
messages, items and networks come from ``simulator.i18n``; this module must never invent a fact that is not
in the hop record it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.controls.catalogue import PROFILES
from simulator.i18n import Lang, item_label, message_label, network_label, outcome_label, party_label

__all__ = [
    "citation_text",
    "decision_plain",
    "decision_title",
    "describe",
    "findings",
    "headline",
    "protection",
    "t",
]

Hop = Mapping[str, Any]


def t(lang: Lang, ja: str, en: str) -> str:
    return ja if lang == "ja" else en


# What each message is for, in everyday words. {sender} and {recipient} are the parties' names.
_PURPOSE: dict[str, tuple[str, str]] = {
    "staff.command": (
        "職員が端末で操作しました。{recipient}が、操作した人の権限を確かめて記録します。",
        "A member of staff acted at a terminal; {recipient} checks their role and records the operation.",
    ),
    "jukinet.identity_update": (
        "住民票の変更が確定したので、{sender}が本人確認情報（氏名・住所・生年月日・性別・住民票コード・個人番号など）を"
        "{recipient}へ送ります。",
        "The change is final, so {sender} sends the identity information (name, address, birth date, sex, "
        "resident code, My Number …) to {recipient}.",
    ),
    "jukinet.identity_notify": (
        "{sender}が本人確認情報の更新を{recipient}へ伝えます。住基ネットを通って都道府県サーバ・全国サーバへ順に届きます。",
        "{sender} passes the identity update on to {recipient}, along Juki-net to the prefectural and national servers.",
    ),
    "jukinet.identity_ack": (
        "{sender}が「受け取りました」と{recipient}へ返します。",
        "{sender} tells {recipient} that the update arrived.",
    ),
    "jukinet.my_number_request": (
        "新しくできた住民票に個人番号を付けるため、{sender}が{recipient}へ個人番号の生成を求めます。",
        "To give the new 住民票 a My Number, {sender} asks {recipient} to generate one.",
    ),
    "jukinet.my_number_issued": (
        "{sender}が、生成された個人番号を{recipient}へ知らせます。",
        "{sender} tells {recipient} the My Number that was generated.",
    ),
    "jukinet.basic4_search": ("{sender}が4情報で本人を検索します。", "{sender} searches by the basic four items."),
    "jukinet.basic4_result": ("{sender}が検索結果を返します。", "{sender} returns the search result."),
    "jukinet.code_acquisition": (
        "符号を取るための手続の一部です。{sender}が処理通番（この手続だけで使う番号）を{recipient}へ渡します。"
        "住民票コードと組み合わせるのは住基ネットの側だけです。",
        "Part of obtaining a linkage code: {sender} passes the processing serial (a number used only for this "
        "procedure) to {recipient}. Only the Juki-net side pairs it with the resident code.",
    ),
    "jukinet.link_code": (
        "全国サーバが、住民票コードから作った「連携用コード」を情報提供ネットワークシステムへ送ります。"
        "住民票コードそのものは送りません。",
        "The national server sends NWS a link code made from the resident code, never the resident code itself.",
    ),
    "atena.register": (
        "{sender}が、この方を{recipient}に登録（更新）します。宛名システムは個人番号で同じ人かを判断し、"
        "団体内統合宛名番号に結び付けます。",
        "{sender} registers (or updates) the person in {recipient}, which decides by My Number whether it is the "
        "same person and links them to a unified addressee number.",
    ),
    "atena.registered": ("{sender}が登録の結果を{recipient}へ返します。", "{sender} returns the registration result."),
    "atena.replica_update": (
        "他の機関から照会されたときに答えるための写し（副本）を、{sender}が{recipient}へ送ります。"
        "最後は中間サーバーに暗号化して保存されます。",
        "{sender} sends {recipient} the copy (replica) used to answer other organisations' queries; it ends up "
        "stored encrypted in the intermediate server.",
    ),
    "office.change": (
        "{sender}が、異動の内容を連番付きで{recipient}へ送ります。庁内連携システムは連番の抜けや順序の乱れを"
        "確かめて参照用の住記データを更新し、承認されたルートの連携先へ配信します。",
        "{sender} sends {recipient} the change, numbered so a gap or a reordering shows; the hub updates its "
        "reference copy and distributes it along the approved routes.",
    ),
    "office.transfer": (
        "{sender}が、承認された連携ルートに設定された項目だけを{recipient}へ渡します。個人番号を含めるのは、"
        "個人番号利用事務のシステムとして登録された連携先だけです。",
        "{sender} passes {recipient} only the items the approved route names; a My Number goes only to a system "
        "registered for My Number business.",
    ),
    "office.request": (
        "{sender}が、承認されたルートで{recipient}にこの方の情報の提供を依頼します。",
        "{sender} asks {recipient} for the person's data under an approved route.",
    ),
    "jukinet.tenshutsu_info": (
        "特例転出で、{sender}が転出証明書情報を住基ネットで{recipient}へ送ります。転入先では一定期間保留され、"
        "カードを確認した特例転入にだけ使われます。",
        "With a special move-out, {sender} sends the move-out certificate information over Juki-net to "
        "{recipient}, which holds it for a set period for a card-checked special move-in only.",
    ),
    "atena.replica_ack": ("{sender}が副本登録の結果を返します。", "{sender} acknowledges the replica."),
    "atena.business_query": (
        "{sender}が、この方の情報を他の機関へ照会したいと{recipient}に依頼します。人の指定は個人番号ではなく、"
        "それぞれのシステムの番号で行います。",
        "{sender} asks {recipient} to query another organisation about the person, naming them by its own "
        "system's number, not by My Number.",
    ),
    "atena.business_answer": ("照会の結果を{recipient}へ返します。", "The query's result goes back to {recipient}."),
    "atena.code_request": (
        "{sender}が、この方の符号（情報連携で使う、機関ごとに違う番号）を取るよう{recipient}に依頼します。",
        "{sender} asks {recipient} to obtain the person's linkage code (a number different for every organisation).",
    ),
    "atena.code_status": (
        "{sender}が符号取得の進み具合を{recipient}へ知らせます。",
        "{sender} tells {recipient} how the linkage-code acquisition stands.",
    ),
    "nws.serial_request": (
        "{sender}が、符号を取るための処理通番を情報提供ネットワークシステムに求めます。",
        "{sender} asks NWS for a processing serial to obtain a linkage code.",
    ),
    "nws.serial_issued": (
        "情報提供ネットワークシステムが処理通番を発行します。",
        "NWS issues a processing serial.",
    ),
    "nws.linkage_code_issued": (
        "情報提供ネットワークシステムが、{recipient}のための符号を作って渡します。符号は機関ごとに違うので、"
        "別の機関の符号と突き合わせることはできません。",
        "NWS makes the linkage code for {recipient} and delivers it. Codes differ per organisation, so one "
        "organisation's code cannot be matched with another's.",
    ),
    "nws.query": (
        "{sender}が情報提供ネットワークシステムへ情報照会を送ります。人の指定は自分の機関の符号で行い、"
        "個人番号は使いません。",
        "{sender} sends the query to NWS, naming the person by its own linkage code, not by My Number.",
    ),
    "nws.provision_request": (
        "情報提供ネットワークシステムが照会を認め、提供許可証と経路情報を付けて、提供する側の{recipient}へ"
        "情報を求めます。人の指定は提供する側の符号に置き換えてあります。",
        "NWS allows the query and asks the providing side, {recipient}, for the data, with a provision permit and "
        "route information. The person is now named by the provider's own linkage code.",
    ),
    "nws.provision_reply": (
        "提供する側が副本から答えを作り、照会した側だけが開ける鍵で暗号化して、情報提供ネットワークシステムへ送ります。",
        "The provider builds the answer from its replica, encrypts it so only the requester can open it, and "
        "sends it to NWS.",
    ),
    "nws.provision_reply/relayed": (
        "情報提供ネットワークシステムは、暗号化された答えを開けずに（開ける鍵を持っていません）、"
        "経路情報どおり照会した側の{recipient}へ届けます。",
        "NWS delivers the encrypted answer to the requester, {recipient}, along the route, without opening it "
        "(it holds no key that could).",
    ),
    "nws.query_refused": (
        "情報提供ネットワークシステムが照会を断り、その理由を{recipient}へ返します。",
        "NWS refuses the query and tells {recipient} why.",
    ),
    "nws.permission_list": (
        "情報提供ネットワークシステムが照会許可用照合リストを配ります。",
        "NWS distributes the query-permission list.",
    ),
    "nws.receipt": ("{sender}が受領を知らせます。", "{sender} acknowledges receipt."),
    "portal.records_request": (
        "マイナポータルが、本人の符号を使って、この方に関する情報提供等記録を情報提供ネットワークシステムに求めます。",
        "The portal asks NWS, with the person's own linkage code, for the provision records about them.",
    ),
    "portal.records_response": (
        "情報提供ネットワークシステムが、この方本人に関する記録だけを、マイナポータルだけが開ける形で返します。",
        "NWS returns only this person's own records, in a form only the portal can open.",
    ),
}


def _party(party: str, lang: Lang) -> str:
    return party_label(party, lang)


def headline(hop: Hop, lang: Lang) -> str:
    """'倉敷市 中間サーバー → 情報提供ネットワークシステム（行政専用ネットワーク（LGWAN等））'."""
    route = f"{_party(hop['sender'], lang)} → {_party(hop['recipient'], lang)}"
    if hop.get("network") and hop["network"] != "terminal":
        net = network_label(str(hop["network"]), lang)
        route += f"（{net}）" if lang == "ja" else f" ({net})"
    return route


def describe(hop: Hop, lang: Lang) -> str:
    """What this hop did, in plain words."""
    key = str(hop["message_type"])
    if hop.get("relayed") and f"{key}/relayed" in _PURPOSE:
        key = f"{key}/relayed"
    pair = _PURPOSE.get(key)
    names = {"sender": _party(hop["sender"], lang), "recipient": _party(hop["recipient"], lang)}
    if pair is None:
        return t(lang, f"{message_label(key, lang)}を送ります。", f"Sends a {message_label(key, lang)}.")
    return t(lang, pair[0], pair[1]).format(**names)


def _items(items: list[str], lang: Lang) -> str:
    sep = "、" if lang == "ja" else ", "
    return sep.join(item_label(i, lang) for i in items)


def protection(hop: Hop, lang: Lang) -> list[str]:
    """How the personal items of this hop travelled, as short sentences (readable, encrypted for whom, absent)."""
    if hop["message_type"] == "staff.command":
        return [t(lang, "電文のやり取りではなく、システムの中での操作です。", "A local operation, not a message.")]
    items: Mapping[str, str] = hop.get("items", {})
    signed = [i for i, v in items.items() if v in ("signed", "plaintext")]
    encrypted = [i for i, v in items.items() if v == "encrypted"]
    absent = [i for i in ("my_number", "resident_code", "basic4") if items.get(i) == "absent"]
    out: list[str] = []
    reader = _party(str(hop["sealed_for"]), lang) if hop.get("sealed_for") else None
    if encrypted and reader:
        out.append(
            t(
                lang,
                f"暗号化して送った項目: {_items(encrypted, lang)}。開けられるのは{reader}だけです。",
                f"Encrypted: {_items(encrypted, lang)}. Only {reader} can open it.",
            )
        )
        if hop.get("relayed"):
            out.append(
                t(
                    lang,
                    f"{_party(hop['sender'], lang)}は中身を開けずに運んでいます。",
                    f"{_party(hop['sender'], lang)} carries it without opening it.",
                )
            )
    elif hop.get("sealed_for") and hop.get("sealed_opened") is False:
        out.append(
            t(
                lang,
                f"暗号化された部分があります（{reader}だけが開けます。この記録では中身の項目名は不明）。",
                f"Part of it is encrypted for {reader} (its field names were not recorded).",
            )
        )
    if signed:
        out.append(
            t(
                lang,
                f"読める形（署名付き）で送った項目: {_items(signed, lang)}。",
                f"Readable (signed, not encrypted): {_items(signed, lang)}.",
            )
        )
    if not signed and not encrypted and not hop.get("sealed_for"):
        out.append(
            t(
                lang,
                "個人を特定する情報は入っていません。改ざんを防ぐ電子署名だけが付いています。",
                "No personal item; only the tamper-evident signature.",
            )
        )
    if absent:
        out.append(
            t(lang, f"入っていない項目: {_items(absent, lang)}。", f"Not in this message: {_items(absent, lang)}.")
        )
    return out


def decision_plain(decision: Mapping[str, Any], lang: Lang) -> str:
    """'許可 — 照会許可用照合リストの第94項に該当するため…' (who decided is said separately)."""
    reason = decision["reason_ja"] if lang == "ja" else decision["reason_en"]
    return f"{outcome_label(str(decision['outcome']), lang)} — {reason}"


def decision_title(decision: Mapping[str, Any], lang: Lang) -> str:
    title = decision.get("title_ja") if lang == "ja" else decision.get("title_en")
    return str(title) if title else t(lang, "（カタログに記載なし）", "(not in the catalogue)")


def citation_text(citation: Mapping[str, Any], lang: Lang) -> str:
    """'桑名市の評価書 ※2（000_b81c60476033af2d.txt L272）「照会・提供可能な…」'."""
    profile = str(citation.get("profile", ""))
    who = PROFILES.get(profile, (profile, profile))
    lines = citation.get("lines") or [0, 0]
    span = f"L{lines[0]}" if lines[0] == lines[1] else f"L{lines[0]}–{lines[1]}"
    where = f"{citation.get('seed')} {span}"
    quote = citation.get("quote")
    if lang == "ja":
        text = f"{who[0]}の評価書 {citation.get('section')}（{where}）"
        return text + (f"「{quote}」" if quote else "")
    text = f"{who[1]} assessment {citation.get('section')} ({where})"
    return text + (f" “{quote}”" if quote else "")


def findings(matrix: Mapping[str, Mapping[str, str]], codes: Mapping[str, set[str]], lang: Lang) -> list[str]:
    """The facts a trainee should take away from a run, each stated only when the trace shows it."""
    out: list[str] = []
    nws = matrix.get("nws.core")
    if nws is not None:
        name = _party("nws.core", lang)
        if nws.get("my_number") == "never":
            out.append(t(lang, f"{name}は個人番号を一度も見ていません。", f"{name} never saw a My Number."))
        if nws.get("resident_code") == "never":
            out.append(t(lang, f"{name}は住民票コードも見ていません。", f"{name} never saw a resident code either."))
        if nws.get("replica") == "ciphertext":
            out.append(
                t(
                    lang,
                    f"{name}は回答の中身（副本）を暗号文のまま中継しただけで、読めていません。",
                    f"{name} relayed the answer's contents (the replica) as ciphertext and could not read them.",
                )
            )
    holders = {p: fps for p, fps in codes.items() if p != "nws.core" and fps}
    if len(holders) >= 2:
        sets = list(holders.values())
        distinct = all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1 :])
        listing = ("、" if lang == "ja" else ", ").join(
            f"{_party(p, lang)} #{'/#'.join(sorted(fps))}" for p, fps in holders.items()
        )
        if distinct:
            out.append(
                t(
                    lang,
                    f"同じ方でも、機関ごとに符号が違います: {listing}。"
                    "符号どうしを結び付けられるのは情報提供ネットワークシステムだけです。",
                    f"One person, a different linkage code per organisation: {listing}. Only NWS can relate them.",
                )
            )
    return out
