"""The hop trees of each flow, as the real components carry them, for the cost-model engine.

Each tree was read off the in-process driver's trace of the same flow (``tests/simulation`` re-derives it from a
real run and compares, so the two cannot drift): who handles what, over which network, which hop writes which
情報提供等記録, and which hop marks a milestone (全国サーバ反映, 符号取得完了, 照会結果受領). This module must never
compute anything: it only describes the shape of the flows.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FLOWS", "FLOW_LABELS", "MILESTONE_LABELS", "Step", "steps_of"]


@dataclass(frozen=True)
class Step:
    """One hop: ``role`` handles ``message`` sent by ``sender`` (None: a staff command or a batch job)."""

    role: str
    message: str
    sender: str | None
    network: str
    children: tuple[Step, ...] = ()
    record: str | None = None  # 情報提供等記録 kind this hop writes
    delay: str | None = None  # a human wait before this step: "confirm" (JUKI-002) or "review" (CHUKAN-011)
    milestone: str | None = None
    per_row: bool = False  # a batch step: its cost is per row, and a unit carries the job's rows


def _s(role: str, message: str, sender: str | None, network: str, *children: Step, **kw: object) -> Step:
    return Step(role, message, sender, network, tuple(children), **kw)  # type: ignore[arg-type]


# -- 住基ネット: 本人確認情報 from 既存住基 to CS, 都道府県サーバ and 全国サーバ (FL-01 steps 4–7) -------------------------
_IDENTITY = _s(
    "cs", "jukinet.identity_update", "registry", "office_lan",
    _s(
        "pref", "jukinet.identity_notify", "cs", "jukinet",
        _s("national", "jukinet.identity_notify", "pref", "jukinet",
           _s("pref", "jukinet.identity_ack", "national", "jukinet"), milestone="national"),
        _s("cs", "jukinet.identity_ack", "pref", "jukinet"),
    ),
)
_REPLICA = _s("atena", "atena.replica_update", "registry", "office_lan",
              _s("ms", "atena.replica_update", "atena", "lgwan", milestone="replica"))
# 符号取得 through 処理通番 (FL-17), started by 宛名 for a person it has no 符号 for.
_CODE = _s(
    "ms", "atena.code_request", "atena", "lgwan",
    _s("nws", "nws.serial_request", "ms", "lgwan",
       _s("ms", "nws.serial_issued", "nws", "lgwan",
          _s("atena", "atena.code_status", "ms", "lgwan",
             _s("registry", "jukinet.code_acquisition", "atena", "office_lan",
                _s("cs", "jukinet.code_acquisition", "registry", "office_lan",
                   _s("national", "jukinet.code_acquisition", "cs", "jukinet",
                      _s("nws", "jukinet.link_code", "national", "lgwan",
                         _s("ms", "nws.linkage_code_issued", "nws", "lgwan",
                            _s("atena", "atena.code_status", "ms", "lgwan", milestone="code"))))))))),
)
_ATENA_KNOWN = _s("atena", "atena.register", "registry", "office_lan",
                  _s("registry", "atena.registered", "atena", "office_lan"))
_ATENA_NEW = _s("atena", "atena.register", "registry", "office_lan",
                _CODE, _s("registry", "atena.registered", "atena", "office_lan"))
_COMMIT_KNOWN = (_IDENTITY, _ATENA_KNOWN, _REPLICA)
_COMMIT_NEW = (_IDENTITY, _ATENA_NEW, _REPLICA)


def _change(*after_commit: Step) -> Step:
    """異動: one clerk enters (JUKI-001), another confirms (JUKI-002), and the commit sends on."""
    return _s("registry", "staff.enter_change", None, "terminal",
              _s("registry", "staff.confirm_change", None, "terminal", *after_commit, delay="confirm"))


_BIRTH_COMMIT = _s(
    "cs", "jukinet.my_number_request", "registry", "office_lan",
    _s("national", "jukinet.my_number_request", "cs", "jukinet",
       _s("cs", "jukinet.my_number_issued", "national", "jukinet",
          _s("registry", "jukinet.my_number_issued", "cs", "office_lan", *_COMMIT_NEW))),
)

# -- 情報照会 (FL-21 → FL-19 → FL-21): 9 steps, the staff command and 8 messages --------------------------------------
_ANSWER = _s("atena", "atena.business_answer", "ms", "lgwan",
             _s("business", "atena.business_answer", "atena", "office_lan", milestone="answer"))
_REPLY = _s("nws", "nws.provision_reply", "ms_p", "lgwan",
            _s("ms", "nws.provision_reply", "nws", "lgwan", _ANSWER, record="query.answered"),
            record="provision.relayed")


def _query(provider: Step, *, nws_record: str = "query.mediated") -> Step:
    return _s(
        "business", "staff.query", None, "terminal",
        _s("atena", "atena.business_query", "business", "office_lan",
           _s("ms", "atena.business_query", "atena", "lgwan",
              _s("nws", "nws.query", "ms", "lgwan", provider, record=nws_record), record="query.sent")),
    )


_AUTO = _s("ms_p", "nws.provision_request", "nws", "lgwan", _REPLY, record="provision.sent")
_HELD = _s("ms_p", "nws.provision_request", "nws", "lgwan",
           _s("ms_p", "staff.release_held", None, "terminal", _REPLY, delay="review", record="provision.sent"),
           record="provision.held")
_REFUSED = _s("ms", "nws.query_refused", "nws", "lgwan", _ANSWER, record="query.refused")

FLOWS: dict[str, Step] = {
    # 異動 of a known resident (転居, 転出, 死亡): FL-01.
    "change": _change(*_COMMIT_KNOWN),
    # 転入 with the 転出証明書's numbers: new to this 宛名, so 符号取得 follows (FL-01, FL-16, FL-17).
    "move_in": _change(*_COMMIT_NEW),
    # 出生: 個人番号 from the 全国サーバ first (FL-04), then as a 転入.
    "birth": _change(_BIRTH_COMMIT),
    "query": _query(_AUTO),
    "query_held": _query(_HELD),
    "query_refused": _s(
        "business", "staff.query", None, "terminal",
        _s("atena", "atena.business_query", "business", "office_lan",
           _s("ms", "atena.business_query", "atena", "lgwan",
              _s("nws", "nws.query", "ms", "lgwan", _REFUSED, record="query.refused"), record="query.sent")),
    ),
    # Night batches and the monthly check.
    "replica_batch": _s("business", "staff.register", None, "terminal",
                        _s("atena", "atena.replica_update", "business", "office_lan",
                           _s("ms", "atena.replica_update", "atena", "lgwan", milestone="replica"))),
    "sofusaki_batch": _s("cs", "batch.sofusaki_export", None, "terminal",
                         _s("cms", "jukinet.sofusaki", "cs", "jukinet", per_row=True), per_row=True),
    "consistency_batch": _s("cs", "batch.consistency_export", None, "terminal",
                            _s("pref", "batch.consistency_check", "cs", "jukinet", per_row=True), per_row=True),
    "retention_batch": _s("cs", "batch.retention_delete", None, "terminal",
                          _s("ms", "batch.retention_delete", None, "terminal", per_row=True), per_row=True),
}

FLOW_LABELS: dict[str, tuple[str, str]] = {
    "change": ("異動（転居・転出・死亡）", "change (move within, out, death)"),
    "move_in": ("転入", "move in"),
    "birth": ("出生", "birth"),
    "query": ("情報照会（自動応答）", "query (automatic reply)"),
    "query_held": ("情報照会（自動応答不可・審査後送信）", "query (held, released by a reviewer)"),
    "query_refused": ("情報照会（照会許可用照合リスト外・拒否）", "query (refused by NWS)"),
    "replica_batch": ("副本更新（夜間バッチ）", "replica update (night batch)"),
    "sofusaki_batch": ("送付先情報（夜間バッチ）", "mailing data (night batch)"),
    "consistency_batch": ("整合性確認（月次）", "consistency check (monthly)"),
    "retention_batch": ("保存期間経過データの削除（夜間バッチ）", "deletion past retention (night batch)"),
}

MILESTONE_LABELS: dict[str, tuple[str, str]] = {
    "national": ("全国サーバ反映まで", "until the national server is updated"),
    "code": ("符号取得完了まで", "until the linkage code is obtained"),
    "replica": ("副本登録まで", "until the replica is registered"),
    "answer": ("照会結果の受領まで", "until the answer reaches the business system"),
}


def steps_of(step: Step) -> list[Step]:
    """Every step of a tree, depth first."""
    out = [step]
    for child in step.children:
        out.extend(steps_of(child))
    return out
