"""Locust load profile: staff of a requesting municipality (倉敷市 介護保険課 and 市民課) at their terminals.

Each user logs in once, then works through a weighted mix with think times: 情報照会 answered automatically,
情報照会 about a person under 支援措置 (held by the provider's 自動応答不可フラグ until its reviewer releases it),
照会 the 照会許可用照合リスト refuses, 副本 updates, and 異動 entered and confirmed by two clerks. A Locust failure
means a wrong outcome only: a refusal that should happen is a success. Persons come from the synthetic
population in the plan file (``JUKISIM_LOAD_PLAN``, written by ``jukisim load``). This file must never
decide what the services allow; it only checks that each outcome is the one the rules call for.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

PLAN: dict[str, Any] = json.loads(Path(os.environ["JUKISIM_LOAD_PLAN"]).read_text(encoding="utf-8"))
JST = timezone(timedelta(hours=9))
ANSWER_BOUND = float(os.environ.get("JUKISIM_ANSWER_BOUND", "20"))  # seconds a clerk waits for an answer
HELD_BOUND = float(os.environ.get("JUKISIM_HELD_BOUND", "10"))  # seconds until the request shows up as held


class WrongOutcome(Exception):
    """The services did something the rules do not call for (this is what Locust counts as a failure)."""


def _context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=PLAN["ca_file"])


def _flow(name: str, started: float, error: Exception | None) -> None:
    """Report a whole flow (first request to final outcome) as its own step, so p95 covers the business wait."""
    events.request.fire(request_type="FLOW", name=name, response_time=(time.perf_counter() - started) * 1000,
                        response_length=0, exception=error, context={})


class RequestingStaff(FastHttpUser):
    """A clerk of the requesting municipality; also plays the provider's reviewer for held requests."""

    insecure = False
    ssl_context_factory = staticmethod(_context)
    wait_time = between(*PLAN["think"])

    def on_start(self) -> None:
        self.operator = f"staff-{random.randrange(10**6):06d}"
        self.provider_url = PLAN["services"][f"platform.{PLAN['provider']}"]
        self.clerks = [self._login(None, "registry", user) for user in ("clerk-a", "clerk-b")]
        self.reviewer = self._login(self.provider_url, "intermediate_server", "reviewer")

    def _login(self, base: str | None, system: str, user: str) -> str:
        url = f"{base or ''}/sessions"
        with self.client.post(url, json={"system": system, "user_id": user, "password": PLAN["password"],
                                                 "biometric": PLAN.get("biometrics", {}).get(f"{system}/{user}")},
                              name=f"login {system}", catch_response=True) as response:
            if response.status_code != 201:
                response.failure(WrongOutcome(f"login {system}/{user}: {response.status_code}"))
                return ""
            return str(response.json()["token"])

    # -- helpers ------------------------------------------------------------------------------------------

    def _start_query(self, person: str, items: list[str], step: str) -> str | None:
        q = PLAN["query"]
        body = {"operator": self.operator, "business_atena_number": person, "row": q["row"], "items": items,
                "provider": PLAN["provider"]}
        with self.client.post(f"/{q['business']}/queries", json=body, name=f"{step}: start",
                              catch_response=True) as response:
            if response.status_code != 201:
                response.failure(WrongOutcome(f"query not started: {response.status_code} {response.text[:200]}"))
                return None
            return str(response.json()["query_id"])

    def _answer(self, query_id: str, step: str, until: float, wait: float = 5.0) -> dict[str, Any]:
        """Poll (long-poll, bounded) until the query leaves 'open' or the bound passes."""
        answer: dict[str, Any] = {"status": "open"}
        while time.perf_counter() < until:
            remaining = max(0.0, min(wait, until - time.perf_counter()))
            with self.client.get(f"/{PLAN['query']['business']}/queries/{query_id}?wait={remaining:.1f}",
                                 name=f"{step}: answer", catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(WrongOutcome(f"answer: {response.status_code}"))
                    return {"status": "error"}
                answer = response.json()
            if answer.get("status") != "open":
                break
        return answer

    def _status(self, query_id: str, step: str) -> str:
        with self.client.get(f"/{PLAN['query']['business']}/queries/{query_id}", name=f"{step}: answer",
                             catch_response=True) as response:
            if response.status_code != 200:
                response.failure(WrongOutcome(f"answer: {response.status_code}"))
                return "error"
            return str(response.json().get("status"))

    # -- the task mix -------------------------------------------------------------------------------------

    @task(6)
    def automatic_answer(self) -> None:
        """介護保険の資格確認: 転入者の前住所地（桑名市）の地方税関係情報・住民票関係情報 — answered automatically."""
        started = time.perf_counter()
        query_id = self._start_query(random.choice(PLAN["movers"]), PLAN["query"]["items"], "auto")
        if query_id is None:
            return
        answer = self._answer(query_id, "auto", started + ANSWER_BOUND)
        error = None
        if answer.get("status") != "provided" or set(answer.get("data", {})) != set(PLAN["query"]["items"]):
            error = WrongOutcome(f"automatic query: expected provided, got {answer.get('status')} {answer.get('code')}")
        _flow("auto: query→answer", started, error)

    @task(2)
    def refused_by_list(self) -> None:
        """An item row 94 does not list: NWS must refuse it (Permission.NotOnPermissionList)."""
        started = time.perf_counter()
        query_id = self._start_query(random.choice(PLAN["movers"]), PLAN["query"]["refused_items"], "refused")
        if query_id is None:
            return
        answer = self._answer(query_id, "refused", started + ANSWER_BOUND)
        error = None
        if answer.get("status") != "refused" or answer.get("code") != "Permission.NotOnPermissionList":
            error = WrongOutcome(f"query off the list: expected refused, got {answer.get('status')}")
        _flow("refused: query→refusal", started, error)

    @task(1)
    def held_for_review(self) -> None:
        """A person under 支援措置: the provider holds it (CHUKAN-011) until its reviewer releases it."""
        started = time.perf_counter()
        query_id = self._start_query(random.choice(PLAN["protected_movers"]), ["resident_info"], "held")
        if query_id is None:
            return
        error: Exception | None = None
        permit = self._find_held(query_id, started + HELD_BOUND)
        status = self._status(query_id, "held") if permit else None
        if permit is None:
            error = WrongOutcome("held query: the provider never held it")
        elif status != "open":
            error = WrongOutcome(f"held query: answered ({status}) before anyone released it")
        else:
            with self.client.post(f"{self.provider_url}/held/{permit}/release", json={"approve": True},
                                  headers={"authorization": f"Bearer {self.reviewer}"}, name="held: release",
                                  catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(WrongOutcome(f"release: {response.status_code} {response.text[:200]}"))
            answer = self._answer(query_id, "held", time.perf_counter() + ANSWER_BOUND)
            if answer.get("status") != "provided":
                error = WrongOutcome(f"released query: expected provided, got {answer.get('status')}")
        _flow("held: query→review→answer", started, error)

    def _find_held(self, query_id: str, until: float) -> str | None:
        while time.perf_counter() < until:
            with self.client.get(f"{self.provider_url}/held", headers={"authorization": f"Bearer {self.reviewer}"},
                                 name="held: review queue", catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(WrongOutcome(f"held list: {response.status_code}"))
                    return None
                for entry in response.json()["held"]:
                    if entry.get("correlation_id") == query_id:
                        return str(entry["permit_id"])
            time.sleep(0.2)
        return None

    @task(1)
    def replica_update(self) -> None:
        """業務の記録（介護保険の保険料段階、または住民税の所得割額）を更新し、副本を中間サーバーへ（宛名経由）登録する。"""
        person = random.choice(PLAN["records"])
        record = dict(person["record"])
        if PLAN["query"]["business"] == "ltc":
            record["premium_stage"] = random.randint(1, 9)
        else:  # 税務: a corrected assessment
            record["income_levy"] = random.randrange(0, 600_000, 100)
        body = {"business_atena_number": person["business_atena_number"], "my_number": person["my_number"],
                "record": record}
        with self.client.post(f"/{PLAN['query']['business']}/records", json=body, name="replica: update",
                              catch_response=True) as response:
            if response.status_code != 202:
                response.failure(WrongOutcome(f"replica update: {response.status_code} {response.text[:200]}"))

    @task(1)
    def change_of_address(self) -> None:
        """転居届: one clerk enters it, another confirms it (JUKI-002); it then travels 既存住基 → CS → J-LIS."""
        started = time.perf_counter()
        person = random.choice(PLAN["residents"])
        base = person["address"].rsplit("丁目", 1)[0] + "丁目" if "丁目" in person["address"] else person["address"]
        form = {"change_type": "move_within", "resident_code": person["resident_code"],
                "address": f"{base}{random.randint(1, 60)}番地", "postal_code": person["postal_code"],
                "change_date": datetime.now(JST).date().isoformat()}
        entry, confirm = self.clerks
        change_id = None
        with self.client.post("/registry/changes", json={"form": form}, headers={"authorization": f"Bearer {entry}"},
                              name="change: enter", catch_response=True) as response:
            if response.status_code == 201:
                change_id = response.json()["change_id"]
            else:
                response.failure(WrongOutcome(f"change entry: {response.status_code} {response.text[:200]}"))
        if change_id is None:
            _flow("change: enter→confirm", started, WrongOutcome("not entered"))
            return
        error = None
        with self.client.post(f"/registry/changes/{change_id}/confirm", json={"matches": True},
                              headers={"authorization": f"Bearer {confirm}"}, name="change: confirm",
                              catch_response=True) as response:
            if response.status_code != 200 or response.json().get("status") != "COMMITTED":
                error = WrongOutcome(f"change confirmation: {response.status_code} {response.text[:200]}")
                response.failure(error)
        _flow("change: enter→confirm", started, error)
