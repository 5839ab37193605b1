"""窓口 (the counter) of one municipality: a 届出 taken at the counter reaches the 住民記録 only with an identity-check
record (document, 本人 or 代理人 with a 委任状, the clerk, for a 転入 the 転出証明書 or the card path), and only if the
card presented is the person's (MADO-001).

It checks and records the identity check, then hands the form to the registry's own entry command; it never writes
the 住民記録 itself and never keeps a copy of the document presented beyond what the check record needs.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from simulator.components.base import Component, Directory, Result
from simulator.components.network import CounterSpec
from simulator.components.registry import Registry
from simulator.components.staff import StaffSession
from simulator.crypto.envelope import MessageSecurity
from simulator.errors import RefusalCode

__all__ = ["DOCUMENTS_JA", "FOUR_ITEMS", "Counter"]

DOCUMENTS_JA = {
    "my_number_card": "個人番号カード",
    "notification_card_with_photo_id": "通知カード＋顔写真付き身分証明書",
    "other_id": "その他の本人確認書類",
}
#: 基本4情報 as the card shows them and the 住民記録 holds them.
FOUR_ITEMS = ("name", "birth_date", "sex", "address")

_DDL = """
CREATE TABLE IF NOT EXISTS counter_id_checks (
    check_id TEXT PRIMARY KEY, municipality TEXT NOT NULL, at TEXT NOT NULL, clerk TEXT NOT NULL,
    change_type TEXT NOT NULL, document TEXT NOT NULL, applicant TEXT NOT NULL, letter_of_authority INTEGER NOT NULL,
    move_in_basis TEXT, change_id TEXT);
"""


class Counter(Component):
    name_ja = "窓口"
    name_en = "counter"

    def __init__(
        self,
        party: str,
        conn: sqlite3.Connection,
        security: MessageSecurity,
        directory: Directory,
        *,
        municipality: str,
        spec: CounterSpec,
        registry: Registry,
    ) -> None:
        super().__init__(party, conn, security, directory)
        self.municipality = municipality
        self.spec = spec
        self.registry = registry
        conn.executescript(_DDL)

    def intake(
        self, clerk: StaffSession, form: Mapping[str, Any], id_check: Mapping[str, Any] | None, now: datetime
    ) -> Result:
        """Take a 届出 at the counter. Value: the registry's change id (the change then awaits confirmation)."""

        def act(result: Result) -> None:
            check = self._check(form, id_check)
            check_id = uuid.uuid4().hex[:12]
            entered = self.registry.enter_change(clerk, form, now)
            result.extend(entered)
            if entered.refusal is not None:
                return
            self.conn.execute(
                "INSERT INTO counter_id_checks VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    check_id,
                    self.municipality,
                    now.isoformat(),
                    clerk.user_id,
                    str(form.get("change_type")),
                    check["document"],
                    check["applicant"],
                    int(bool(check.get("letter_of_authority"))),
                    check.get("move_in_basis"),
                    str(entered.value),
                ),
            )
            self.allow(
                result,
                "MADO-001",
                now,
                f"{DOCUMENTS_JA[check['document']]}で本人確認し（{'代理人・委任状あり' if check['applicant'] == 'agent' else '本人'}）"
                "記録したうえで受け付けました",
                f"identity checked with {check['document']} ({check['applicant']}) and recorded before intake",
                check_id=check_id,
                clerk=clerk.user_id,
                document=check["document"],
                applicant=check["applicant"],
            )
            result.value = entered.value

        return self.command(now, None, act)

    def _check(self, form: Mapping[str, Any], id_check: Mapping[str, Any] | None) -> Mapping[str, Any]:
        if not id_check:
            raise self.refuse(
                RefusalCode.FIELD_MISSING,
                "MADO-001",
                "本人確認の記録がないため受け付けできません",
                "no identity-check record: the intake cannot be committed",
                field="id_check",
            )
        document = id_check.get("document")
        if document not in self.spec.documents:
            accepted = "、".join(DOCUMENTS_JA[d] for d in self.spec.documents)
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "MADO-001",
                f"本人確認書類として認められません（{document}）。認められるもの: {accepted}",
                f"document {document!r} is not accepted; accepted: {', '.join(self.spec.documents)}",
                field="id_check.document",
            )
        applicant = id_check.get("applicant")
        if applicant not in ("self", "agent"):
            raise self.refuse(
                RefusalCode.FIELD_INVALID,
                "MADO-001",
                "届出人が本人か代理人かの記録がありません",
                "id_check.applicant must be self or agent",
                field="id_check.applicant",
            )
        if applicant == "agent" and self.spec.agent_letter_required and not id_check.get("letter_of_authority"):
            raise self.refuse(
                RefusalCode.FIELD_MISSING,
                "MADO-001",
                "代理人による届出には委任状が必要です",
                "an agent needs a letter of authority (委任状)",
                field="id_check.letter_of_authority",
            )
        card = id_check.get("card")
        if applicant == "self" and isinstance(card, Mapping):
            expected = self._four_items(form)
            differing = [k for k in FOUR_ITEMS if expected.get(k) is not None and str(card.get(k)) != str(expected[k])]
            if differing:
                raise self.refuse(
                    RefusalCode.STATE_CONFLICT,
                    "MADO-001",
                    f"提示されたカードの基本4情報が届出の本人と一致しません（{'、'.join(differing)}）",
                    f"the card's 4 items do not match the person being registered ({', '.join(differing)})",
                    field="id_check.card",
                )
        if form.get("change_type") == "move_in" and id_check.get("move_in_basis") not in ("certificate", "card"):
            raise self.refuse(
                RefusalCode.FIELD_MISSING,
                "MADO-001",
                "転入届には転出証明書、または個人番号カードによる特例転入が必要です",
                "a 転入 needs the 転出証明書 or the card path (特例転入)",
                field="id_check.move_in_basis",
            )
        return id_check

    def _four_items(self, form: Mapping[str, Any]) -> dict[str, Any]:
        """The 4 items of the person the form is about: from the form for a 転入, from the 住民記録 otherwise."""
        if form.get("change_type") in ("move_in", "birth"):
            return {k: form.get(k) for k in FOUR_ITEMS}
        row = self.conn.execute(
            "SELECT name, birth_date, sex, address FROM registry_residents WHERE resident_code = ?",
            (str(form.get("resident_code")),),
        ).fetchone()
        if row is None:
            raise self.refuse(
                RefusalCode.NOT_FOUND,
                "MADO-001",
                "届出の対象者が住民記録にありません",
                "the person named on the form is not in the 住民記録",
                field="resident_code",
            )
        return dict(zip(FOUR_ITEMS, row, strict=True))

    def checks(self) -> list[dict[str, Any]]:
        keys = ("check_id", "at", "clerk", "change_type", "document", "applicant", "letter_of_authority", "change_id")
        return [
            dict(zip(keys, r, strict=True))
            for r in self.conn.execute(
                "SELECT check_id, at, clerk, change_type, document, applicant, letter_of_authority, change_id"
                " FROM counter_id_checks WHERE municipality = ? ORDER BY at",
                (self.municipality,),
            )
        ]
