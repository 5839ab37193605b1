"""The HTTP face of one organisation's service (FastAPI): health, readiness, ``/messages``, and the staff API.

Every service takes signed envelopes at ``POST /messages`` (``application/jose``) from peers authenticated by
mutual TLS. A municipality's service adds the business-system API a load tool calls (情報照会, 副本 updates,
異動 entry and confirmation); a 中間サーバー tenant adds its reviewers' queue of held requests. Each call runs one
component step through the service driver. This module must never implement a control: it maps HTTP onto
component calls and refusals onto HTTP answers, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Body, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from simulator.components.base import Result
from simulator.components.business import BusinessSystem
from simulator.components.intermediate_server import IntermediateServer
from simulator.components.registry import Registry
from simulator.components.staff import StaffDirectory, StaffSession
from simulator.drivers.service import Receipt, ServiceDriver
from simulator.errors import InputError, Refusal
from simulator.services.admission import Admission
from simulator.services.sender import JOSE, Sender
from simulator.services.tls import peer_party
from simulator.services.topology import ServiceSpec
from simulator.store.db import connect
from simulator.world import World

__all__ = ["ServiceContext", "create_app", "http_status"]

T = TypeVar("T")
MAX_WIRE = 1024 * 1024
MAX_WAIT = 30.0


def http_status(code: str) -> int:
    """HTTP status for a refusal code: who was wrong and how, in HTTP's words (the code itself is in the body)."""
    if code == "Auth.NotAuthenticated":
        return 401
    if code == "Input.NotFound":
        return 404
    if code == "Input.StateConflict":
        return 409
    if code.startswith("Input."):
        return 422
    return 403


@dataclass
class ServiceContext:
    """One running service: its parties' components, driver, sender and what the API keeps in memory."""

    spec: ServiceSpec
    world: World
    driver: ServiceDriver
    sender: Sender | None = None
    admission: Admission = field(default_factory=Admission)
    draining: bool = False
    started: bool = False
    in_flight: int = 0
    last_message: float = 0.0
    sessions: dict[str, StaffSession] = field(default_factory=dict)
    held: dict[str, dict[str, Any]] = field(default_factory=dict)  # permit id → correlation id, held at
    _waiters: dict[str, asyncio.Event] = field(default_factory=dict)
    _logins: dict[str, tuple[StaffDirectory, threading.Lock]] = field(default_factory=dict)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a driver call. Inline on the event loop: a step is a few milliseconds of CPU, the driver's lock
        serialises the components (they share one SQLite connection), and a thread hop per step cost more
        than it overlapped (measured)."""
        self.in_flight += 1
        try:
            return fn()
        finally:
            self.in_flight -= 1

    def settle(self, receipt: Receipt) -> None:
        """After a step: hand what it staged for other services to the sender, wake whoever waits on it."""
        if self.sender is not None and receipt.remote:
            self.sender.submit(receipt.remote)
        for correlation_id in receipt.correlation_ids:
            waiter = self._waiters.pop(correlation_id, None)
            if waiter is not None:
                waiter.set()
        held = receipt.result.value if isinstance(receipt.result.value, dict) else {}
        if "held" in held:
            hop = receipt.hops[0] if receipt.hops else None
            self.held[str(held["held"])] = {
                "correlation_id": hop.correlation_id if hop else None,
                "held_at": hop.at.isoformat() if hop else None,
            }

    def login_directory(self, party: str) -> tuple[StaffDirectory, threading.Lock]:
        """The staff directory of ``party`` on a connection of its own, so a login (scrypt) runs off the loop
        without touching the connection the steps use (WAL lets it read beside them)."""
        found = self._logins.get(party)
        if found is None:
            conn = connect(self.world.data_dir / f"{self.spec.organisation}.sqlite")
            found = self._logins[party] = (StaffDirectory(conn, party), threading.Lock())
        return found

    def close(self) -> None:
        for directory, _lock in self._logins.values():
            directory.conn.close()
        self._logins.clear()

    def waiter(self, correlation_id: str) -> asyncio.Event:
        event = self._waiters.get(correlation_id)
        if event is None:
            event = self._waiters[correlation_id] = asyncio.Event()
        return event

    def parties_of(self, kind: type) -> dict[str, Any]:
        return {p: self.world.components[p] for p in self.spec.parties if isinstance(self.world.components[p], kind)}


# -- request and response bodies -------------------------------------------------------------------------


class Verdict(BaseModel):
    status: Literal["accepted", "refused"]
    message_id: str | None = None
    message_type: str | None = None
    refusal: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = Field(default_factory=list)
    duplicate: bool = Field(False, description="the same message was handled before: this is its kept verdict")


class SessionRequest(BaseModel):
    system: str = Field("registry", description="registry | municipal_cs | intermediate_server")
    user_id: str
    password: str
    biometric: str | None = Field(
        None, max_length=512, description="生体認証センサーの読取値（指紋・顔認証を求める団体: AUTH-003）"
    )


class QueryRequest(BaseModel):
    operator: str = Field(min_length=1, max_length=64, description="職員ID at the business terminal (GYOMU-011)")
    business_atena_number: str = Field(min_length=1, max_length=32)
    row: str = Field(min_length=1, max_length=8, description="別表第二 row (e.g. 94)")
    items: list[str] = Field(min_length=1, max_length=16)
    provider: str = Field(min_length=1, max_length=64, description="providing organisation (e.g. kuwana)")


class RecordRequest(BaseModel):
    business_atena_number: str = Field(min_length=1, max_length=32)
    my_number: str = Field(min_length=12, max_length=12)
    record: dict[str, Any]
    auto_reply_disabled: bool = False


class ChangeRequest(BaseModel):
    form: dict[str, Any] = Field(description="the 届出 form's fields (JUKI-001), e.g. change_type, resident_code")


class ConfirmRequest(BaseModel):
    matches: bool = True


class ReleaseRequest(BaseModel):
    approve: bool = True


def _refusal_response(refusal: Refusal, status: int | None = None) -> JSONResponse:
    return JSONResponse(
        {"status": "refused", "refusal": refusal.as_dict()}, status_code=status or http_status(str(refusal.code))
    )


def _decisions(result: Result) -> list[dict[str, Any]]:
    return [{"control_id": d.control_id, "outcome": str(d.outcome), "code": d.code} for d in result.decisions]


def _draining() -> JSONResponse:
    return JSONResponse({"status": "draining", "detail": "停止処理中のため新しい業務を受け付けません"}, status_code=503)


# -- the application ---------------------------------------------------------------------------------------


def create_app(ctx: ServiceContext) -> FastAPI:
    spec = ctx.spec
    app = FastAPI(
        title=f"jukisim service {spec.name}",
        version="1",
        description=(
            f"{spec.name} の各システム（{', '.join(spec.parties)}）。組織間の電文は POST /messages"
            "（application/jose, 相互TLS）で受け付けます。"
        ),
    )

    @app.exception_handler(InputError)
    async def bad_input(_request: Request, exc: InputError) -> JSONResponse:
        """Bad input (not a protocol refusal): the field and the rule it broke; nothing was written."""
        return JSONResponse({"status": "invalid", "field": exc.field, "rule": exc.rule}, status_code=422)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, Any]:
        """稼働確認 (liveness): the process answers."""
        return {"status": "ok", "service": spec.name}

    @app.get("/ready", tags=["operations"])
    async def ready() -> JSONResponse:
        """準備完了 (readiness): stores open, sender running, not shutting down."""
        backlog = ctx.sender.backlog() if ctx.sender else {}
        ok = ctx.started and not ctx.draining
        body = {"ready": ok, "service": spec.name, "parties": list(spec.parties), "draining": ctx.draining,
                "backlog": backlog, "admission": ctx.admission.as_dict(),
                "sender": dataclasses.asdict(ctx.sender.stats) if ctx.sender else {}}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post(
        "/messages",
        tags=["linkage"],
        response_model=Verdict,
        openapi_extra={"requestBody": {"required": True, "content": {JOSE: {"schema": {"type": "string"}}}}},
    )
    async def messages(request: Request) -> JSONResponse:
        """組織間の電文 (JWS compact). The sending party is the one named by the TLS client certificate."""
        loop = asyncio.get_running_loop()
        ctx.last_message = loop.time()
        if request.headers.get("content-type", "").split(";")[0].strip() != JOSE:
            return JSONResponse({"status": "refused", "refusal": {"code": "Security.MalformedMessage", "field":
                                 "content-type", "reason_en": f"content-type must be {JOSE}"}}, status_code=415)
        raw = await request.body()
        if len(raw) > MAX_WIRE:
            return JSONResponse({"status": "refused", "refusal": {"code": "Security.MalformedMessage", "field": "wire",
                                 "reason_en": "message too large"}}, status_code=413)
        chain = ((request.scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain") or []
        peer = peer_party(chain[0]) if chain else None
        wire = raw.decode("ascii", errors="replace")
        busy = ctx.admission.enter(ctx.driver.backlog(), business=False)
        if busy is not None:
            return busy
        try:
            receipt = await ctx.run(lambda: ctx.driver.receive(wire, peer))
        except RecursionError:
            # Last guard: the routing peek and the envelope parser refuse deep nesting themselves; anything deeper
            # still is refused as malformed, and a step that had begun was rolled back by its transaction.
            return JSONResponse({"status": "refused", "refusal": {
                "code": "Security.MalformedMessage", "field": "wire", "reason_ja": "電文のJSONの入れ子が深すぎます",
                "reason_en": "the message nests JSON too deeply"}}, status_code=http_status("Security.MalformedMessage"))
        finally:
            ctx.admission.leave()
        ctx.settle(receipt)
        ctx.last_message = loop.time()
        verdict = Verdict(
            status=receipt.status,
            message_id=receipt.message_id,
            message_type=receipt.message_type,
            refusal=receipt.refusal.as_dict() if receipt.refusal else None,
            decisions=_decisions(receipt.result),
            duplicate=receipt.duplicate,
        )
        status = 202 if receipt.refusal is None else http_status(str(receipt.refusal.code))
        return JSONResponse(verdict.model_dump(), status_code=status)

    businesses = ctx.parties_of(BusinessSystem)
    registries = ctx.parties_of(Registry)
    tenants = ctx.parties_of(IntermediateServer)
    staffed: dict[str, Any] = {}
    for party, component in ctx.world.components.items():
        if party in spec.parties and getattr(component, "staff", None) is not None:
            staffed[party.rsplit(".", 1)[-1] if not party.startswith("platform.") else "intermediate_server"] = component

    def session(authorization: str | None, party: str) -> StaffSession | JSONResponse:
        token = (authorization or "").removeprefix("Bearer ").strip()
        found = ctx.sessions.get(token)
        if found is None or found.component != party:
            return JSONResponse({"status": "refused", "refusal": {"code": "Auth.NotAuthenticated", "field":
                                 "authorization", "reason_ja": "ログインが必要です", "reason_en":
                                 "a staff session for this system is required (POST /sessions)"}}, status_code=401)
        return found

    if staffed:

        @app.post("/sessions", tags=["staff"])
        async def login(req: SessionRequest) -> JSONResponse:
            """職員ログイン (AUTH-002): returns a bearer token for this system's staff API."""
            component = staffed.get(req.system)
            if component is None:
                return JSONResponse({"detail": f"system must be one of {sorted(staffed)}"}, status_code=404)
            directory, lock = ctx.login_directory(component.party)

            def authenticate() -> StaffSession:
                with lock:
                    # The wall clock the service runs on: password ages and rights windows are checked against it.
                    return directory.authenticate(
                        req.user_id, req.password, now=ctx.driver.clock(), biometric=req.biometric
                    )

            try:
                # scrypt takes tens of milliseconds: off the event loop, on the store's own login connection.
                found = await asyncio.to_thread(authenticate)
            except Refusal as refusal:
                return _refusal_response(refusal)
            token = secrets.token_urlsafe(24)
            ctx.sessions[token] = found
            return JSONResponse({"token": token, "user_id": found.user_id, "system": req.system}, status_code=201)

    for party, system in businesses.items():
        _business_routes(app, ctx, party.rsplit(".", 1)[-1], system)
    for party, registry in registries.items():
        _registry_routes(app, ctx, party, registry, session)
    for party, tenant in tenants.items():
        _tenant_routes(app, ctx, party, tenant, session)
    return app


def _business_routes(app: FastAPI, ctx: ServiceContext, name: str, system: BusinessSystem) -> None:
    tag = f"business:{name}"

    @app.post(f"/{name}/queries", tags=[tag], status_code=201, name=f"{name}_query")
    async def start_query(
        req: QueryRequest,
        idempotency_key: Annotated[str | None, Header(max_length=128, description="同じキーの再送は同じ照会IDを返す"
                                                      " / a retry with the same key gets the same query")] = None,
    ) -> JSONResponse:
        """情報照会を開始します (GYOMU-011). Returns the query id; poll GET …/queries/{id}."""
        if ctx.draining:
            return _draining()
        busy = ctx.admission.enter(ctx.driver.backlog(), business=True)
        if busy is not None:
            return busy
        key = f"{name}/queries:{idempotency_key}" if idempotency_key else None
        try:
            receipt = await ctx.run(lambda: ctx.driver.command(
                lambda now: system.query(req.operator, req.business_atena_number, req.row, list(req.items),
                                         req.provider, now), request_key=key))
        finally:
            ctx.admission.leave()
        ctx.settle(receipt)
        if receipt.refusal is not None:
            return _refusal_response(receipt.refusal)
        return JSONResponse({"query_id": receipt.result.value, "status": "open"}, status_code=201)

    @app.get(f"/{name}/queries/{{query_id}}", tags=[tag], name=f"{name}_answer")
    async def get_answer(
        query_id: str,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT, description="seconds to wait while the query is open")] = 0,
    ) -> JSONResponse:
        """照会結果: status open | provided | refused | declined, with the data or the refusal code."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            event = ctx.waiter(query_id) if wait else None
            answer = await ctx.run(lambda: ctx.driver.read(lambda: system.answer(query_id)))
            if answer is None:
                return JSONResponse({"detail": "no such query"}, status_code=404)
            remaining = deadline - loop.time()
            if answer.get("status") != "open" or event is None or remaining <= 0:
                return JSONResponse({"query_id": query_id, **answer})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    @app.post(f"/{name}/records", tags=[tag], status_code=202, name=f"{name}_record")
    async def register(req: RecordRequest) -> JSONResponse:
        """業務データの登録・更新と副本の更新 (宛名 → 中間サーバー)."""
        if ctx.draining:
            return _draining()
        busy = ctx.admission.enter(ctx.driver.backlog(), business=True)
        if busy is not None:
            return busy
        try:
            receipt = await ctx.run(lambda: ctx.driver.command(
                lambda now: system.register(req.business_atena_number, req.my_number, req.record, now,
                                            auto_reply_disabled=req.auto_reply_disabled)))
        finally:
            ctx.admission.leave()
        ctx.settle(receipt)
        if receipt.refusal is not None:
            return _refusal_response(receipt.refusal)
        return JSONResponse({"status": "accepted", "decisions": _decisions(receipt.result)}, status_code=202)


def _registry_routes(
    app: FastAPI, ctx: ServiceContext, party: str, registry: Registry,
    session: Callable[[str | None, str], StaffSession | JSONResponse],
) -> None:
    tag = "registry"

    @app.post("/registry/changes", tags=[tag], status_code=201)
    async def enter_change(
        req: ChangeRequest, authorization: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        """異動の入力 (JUKI-001): pending until another clerk confirms it."""
        if ctx.draining:
            return _draining()
        who = session(authorization, party)
        if isinstance(who, JSONResponse):
            return who
        receipt = await ctx.run(lambda: ctx.driver.command(lambda now: registry.enter_change(who, req.form, now)))
        ctx.settle(receipt)
        if receipt.refusal is not None:
            return _refusal_response(receipt.refusal)
        return JSONResponse({"change_id": receipt.result.value, "status": "PENDING"}, status_code=201)

    @app.post("/registry/changes/{change_id}/confirm", tags=[tag])
    async def confirm_change(
        change_id: str, req: Annotated[ConfirmRequest, Body()], authorization: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        """異動の確認と確定 (JUKI-002): by a clerk other than the one who entered it."""
        if ctx.draining:
            return _draining()
        who = session(authorization, party)
        if isinstance(who, JSONResponse):
            return who
        receipt = await ctx.run(lambda: ctx.driver.command(
            lambda now: registry.confirm_change(who, change_id, req.matches, now)))
        ctx.settle(receipt)
        if receipt.refusal is not None:
            return _refusal_response(receipt.refusal)
        return JSONResponse(dict(receipt.result.value or {}))


def _tenant_routes(
    app: FastAPI, ctx: ServiceContext, party: str, tenant: IntermediateServer,
    session: Callable[[str | None, str], StaffSession | JSONResponse],
) -> None:
    tag = "intermediate_server"

    def held_list() -> list[dict[str, Any]]:
        permits = tenant.held_requests()
        unknown = [p for p in permits if p not in ctx.held]
        if unknown:  # held before this process started: the 情報提供等記録 says which exchange each belongs to
            for row in tenant.records.rows(kind="provision.held"):
                permit = str(row["data"].get("permit_id"))
                if permit in unknown:
                    ctx.held[permit] = {"correlation_id": row["correlation_id"], "held_at": row["at"]}
        return [{"permit_id": p, **ctx.held.get(p, {})} for p in permits]

    @app.get("/held", tags=[tag])
    async def held(authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
        """自動応答不可フラグで保留中の提供要求 (CHUKAN-011), oldest first."""
        who = session(authorization, party)
        if isinstance(who, JSONResponse):
            return who
        return JSONResponse({"held": await ctx.run(lambda: ctx.driver.read(held_list))})

    @app.post("/held/{permit_id}/release", tags=[tag])
    async def release(
        permit_id: str, req: Annotated[ReleaseRequest, Body()], authorization: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        """保留中の要求を確認して送信（approve=true）または提供しない（false）。"""
        who = session(authorization, party)
        if isinstance(who, JSONResponse):
            return who
        receipt = await ctx.run(lambda: ctx.driver.command(
            lambda now: tenant.release_held(who, permit_id, req.approve, now)))
        ctx.settle(receipt)
        if receipt.refusal is not None:
            return _refusal_response(receipt.refusal)
        ctx.held.pop(permit_id, None)
        return JSONResponse({"permit_id": permit_id, "status": "released" if req.approve else "declined",
                             "decisions": _decisions(receipt.result)})
