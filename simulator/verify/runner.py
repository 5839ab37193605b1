"""Running scenarios: a fresh copy of the profile's world for each, the steps, and the expectations checked.

Worlds are built once per (municipalities, size, seed) as templates and copied per scenario, so each
scenario starts from the same state and nothing one scenario does (a revoked certificate, a disabled
account) leaks into another. A scenario passes only if every expectation holds; a failed expectation says
which one and what was seen instead. This module must never relax an expectation or invent a decision.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.components.base import Outgoing
from simulator.controls.decision import ControlDecision
from simulator.demo import DEMO_START, setup_world
from simulator.drivers.inproc import Hop, InProcessDriver
from simulator.population import DemoPopulation
from simulator.verify.scenario import DecisionExpectation, Expectations, Scenario
from simulator.verify.steps import ScenarioContext, StepError, StepRecord, run_step
from simulator.verify.worlds import WorldPlan, plan_for
from simulator.world import World, WorldSpec

__all__ = ["ScenarioResult", "TemplateCache", "run_scenario"]

NWS_SIDE_PREFIXES = ("nws.", "platform.", "portal")


@dataclass
class ScenarioResult:
    scenario: Scenario
    passed: bool
    profile: str = ""
    failures: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)  # matched decisions, one per expectation
    decisions: list[ControlDecision] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def verified(self) -> set[tuple[str, str]]:
        """(control, outcome) pairs this scenario proved: only from expectations that were met, only if passed."""
        if not self.passed:
            return set()
        return {(e["control"], e["outcome"]) for e in self.evidence}


class TemplateCache:
    """Builds each needed world once, then hands out copies."""

    def __init__(self, root: Path, on_build: Callable[[WorldPlan], None] | None = None) -> None:
        self.root = root
        self.on_build = on_build
        self._built: dict[str, Path] = {}

    def template(self, plan: WorldPlan) -> Path:
        key = plan.key
        if key not in self._built:
            path = self.root / "templates" / key
            if self.on_build:
                self.on_build(plan)
            run = setup_world(path, size=plan.size, seed=plan.seed, municipalities=plan.municipalities)
            run.world.close()
            self._built[key] = path
        return self._built[key]

    def copy(self, plan: WorldPlan, name: str) -> Path:
        target = self.root / "runs" / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self.template(plan), target)
        return target


def _component_matches(party: str, wanted: str | None) -> bool:
    return wanted is None or party == wanted or party.endswith(wanted)


def _match(decisions: Iterable[ControlDecision], want: DecisionExpectation) -> ControlDecision | None:
    for d in decisions:
        if (
            d.control_id == want.control
            and str(d.outcome) == want.outcome
            and _component_matches(d.component, want.component)
            and (want.code is None or d.code == want.code)
        ):
            return d
    return None


def _step_decisions(records: dict[str, StepRecord], step: str | None) -> list[ControlDecision]:
    chosen = [records[step]] if step is not None else list(records.values())
    out: list[ControlDecision] = []
    for record in chosen:
        for hop in record.hops:
            out.extend(hop.decisions)
    return out


def _store_text(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        chunks: list[str] = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                chunks.extend(v for v in row if isinstance(v, str))
        return "\n".join(chunks)
    finally:
        conn.close()


def _opened(world: World, message: Outgoing) -> str:
    text = json.dumps(message.envelope.body, ensure_ascii=False)
    if message.envelope.sealed and message.sealed_for:
        text += json.dumps(
            world.component(message.sealed_for).security.unseal(message.envelope.sealed), ensure_ascii=False
        )
    return text


def _values(world: World, population: DemoPopulation, item: str) -> set[str]:
    if item == "my_number":
        return {r["my_number"] for rows in population.residents.values() for r in rows}
    if item == "resident_code":
        return {r["resident_code"] for rows in population.residents.values() for r in rows}
    return {c for (c,) in world.stores["nws"].execute("SELECT linkage_code FROM nws_linkage_codes")}


def _resolve(value: Any, world: dict[str, str]) -> Any:
    """Expectations may name world values too: "@world.<key>" as a whole value, or "{key}" inside a string."""
    if isinstance(value, str):
        if value.startswith("@world.") and value.removeprefix("@world.") in world:
            return world[value.removeprefix("@world.")]
        for key, replacement in world.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: _resolve(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, world) for v in value]
    return value


def _check(scenario: Scenario, ctx: ScenarioContext, result: ScenarioResult) -> None:
    exp = Expectations.model_validate(_resolve(scenario.expect.model_dump(), ctx.placeholders))
    records = ctx.records
    for name in [e.step for e in exp.decisions + exp.no_decisions if e.step] + [a.step for a in exp.answers]:
        if name not in records:
            result.failures.append(f"expect refers to step {name!r}, which the scenario does not have")
    if result.failures:
        return
    for want in exp.decisions:
        found = _match(_step_decisions(records, want.step), want)
        if found is None:
            seen = sorted({f"{d.control_id}:{d.outcome}" for d in _step_decisions(records, want.step)})
            result.failures.append(
                f"expected decision {want.control} {want.outcome}"
                + (f" in step {want.step}" if want.step else "")
                + (f" by {want.component}" if want.component else "")
                + (f" with code {want.code}" if want.code else "")
                + f"; seen: {', '.join(seen) or 'none'}"
            )
        else:
            result.evidence.append(
                {"control": want.control, "outcome": want.outcome, "step": want.step, "decision": found.as_record()}
            )
    for want in exp.no_decisions:
        found = _match(_step_decisions(records, want.step), want)
        if found is not None:
            result.failures.append(
                f"decision {want.control} {want.outcome} must not occur, but {found.component} took it"
            )
    for answer in exp.answers:
        value = records[answer.step].value or {}
        system = (
            ctx.world.component(str(value.get("system"))) if isinstance(value, dict) and value.get("system") else None
        )
        got = system.answer(str(value.get("query_id"))) if system is not None and hasattr(system, "answer") else None
        if got is None:
            result.failures.append(f"step {answer.step} has no query answer to check")
            continue
        if got.get("status") != answer.status or (answer.code and got.get("code") != answer.code):
            result.failures.append(
                f"step {answer.step}: answer {got.get('status')} {got.get('code') or ''}, "
                f"expected {answer.status} {answer.code or ''}"
            )
        elif answer.items is not None and sorted((got.get("data") or {}).keys()) != sorted(answer.items):
            result.failures.append(
                f"step {answer.step}: items {sorted(got.get('data') or {})}, expected {answer.items}"
            )
    for refusal in exp.refusals:
        seen_refusal = records[refusal.step].refusal if refusal.step in records else None
        if seen_refusal is None:
            result.failures.append(f"step {refusal.step} was expected to be refused with {refusal.code} but was not")
        elif str(seen_refusal.code) != refusal.code or (refusal.control and seen_refusal.control_id != refusal.control):
            result.failures.append(
                f"step {refusal.step}: refused with {seen_refusal.code} ({seen_refusal.control_id}), "
                f"expected {refusal.code} ({refusal.control or 'any control'})"
            )
    for name in exp.steps_succeed:
        refusal_seen = records[name].refusal if name in records else None
        if name not in records:
            result.failures.append(f"steps_succeed names {name!r}, which the scenario does not have")
        elif refusal_seen is not None:
            result.failures.append(f"step {name} was refused: {refusal_seen.code} ({refusal_seen.control_id})")
    for rec in exp.records:
        conn = ctx.world.stores.get(rec.store)
        if conn is None:
            result.failures.append(f"no store {rec.store!r} in this world")
            continue
        sql = f"SELECT COUNT(*) FROM {rec.table} WHERE kind = ?"
        params: list[Any] = [rec.kind]
        if rec.step is not None:
            correlations = {h.correlation_id for h in records[rec.step].hops if h.correlation_id}
            if not correlations:
                result.failures.append(f"step {rec.step} carried no correlation id to find records by")
                continue
            sql += f" AND correlation_id IN ({','.join('?' * len(correlations))})"
            params.extend(sorted(correlations))
        count = conn.execute(sql, params).fetchone()[0]
        if count < rec.at_least:
            result.failures.append(
                f"{rec.store}.{rec.table}: {count} record(s) of kind {rec.kind}, expected ≥ {rec.at_least}"
            )
    for absent in exp.absent:
        values = _values(ctx.world, ctx.population, absent.item)
        pattern = re.compile("|".join(re.escape(v) for v in sorted(values))) if values else None
        if pattern is None:
            continue
        if absent.where in ("nws_traffic", "city_traffic"):
            for message in ctx.captured:
                nws_side = any(p.startswith(NWS_SIDE_PREFIXES) for p in (message.envelope.sender, message.recipient))
                touches_nws = "nws.core" in (message.envelope.sender, message.recipient)
                wanted = (absent.where == "nws_traffic" and touches_nws) or (
                    absent.where == "city_traffic" and not nws_side
                )
                if wanted and pattern.search(_opened(ctx.world, message)):
                    result.failures.append(
                        f"{absent.item} found in {message.envelope.type} "
                        f"{message.envelope.sender} → {message.recipient}"
                    )
                    break
        else:
            for store in sorted(ctx.world.data_dir.glob("*.sqlite")):
                nws_side_store = store.stem == "nws" or store.stem.startswith("platform.") or store.stem == "portal"
                if (absent.where == "nws_side_stores") == nws_side_store and pattern.search(_store_text(store)):
                    result.failures.append(f"{absent.item} found in store {store.name}")


def run_scenario(
    scenario: Scenario,
    cache: TemplateCache,
    profile: str | None = None,
    on_hop: Callable[[Hop, Outgoing], None] | None = None,
    on_local: Callable[[Hop], None] | None = None,
    on_start: Callable[[World], None] | None = None,
) -> ScenarioResult:
    started = time.perf_counter()
    profile = profile or scenario.profiles[0]
    result = ScenarioResult(scenario, passed=False, profile=profile)
    plan = plan_for(scenario, profile)
    data_dir = cache.copy(plan, f"{scenario.id}@{profile}")
    world = World.open(data_dir, WorldSpec(municipalities=plan.municipalities, start=DEMO_START))
    population = DemoPopulation.load(data_dir / "population.json")
    if on_start is not None:
        on_start(world)
    captured: list[Outgoing] = []

    def observe(hop: Hop, outgoing: Outgoing) -> None:
        captured.append(outgoing)
        if on_hop is not None:
            on_hop(hop, outgoing)

    # The template was built over the first minutes of the demo day; continue the clock from there.
    driver = InProcessDriver(world, DEMO_START, on_hop=observe, on_local=on_local)
    driver.advance(_template_clock(world) - DEMO_START)
    ctx = ScenarioContext(world, driver, population, plan.provider, plan.requester, plan.placeholders(), captured)
    try:
        for index, step in enumerate(scenario.steps):
            try:
                run_step(ctx, step.do, step.name or f"step{index + 1}", dict(step.params))
            except StepError as exc:
                result.error = f"step {index + 1} ({step.do}): {exc}"
                break
        if result.error is None:
            _check(scenario, ctx, result)
        else:
            result.failures.append(result.error)
        result.passed = not result.failures
        result.hops = [h for r in ctx.records.values() for h in r.hops]
        result.decisions = [d for h in result.hops for d in h.decisions]
    finally:
        world.close()
        result.seconds = time.perf_counter() - started
    return result


def _template_clock(world: World) -> Any:
    """The latest time any organisation recorded, so a scenario never runs behind its own evidence."""
    latest = DEMO_START
    from datetime import datetime

    for conn in world.stores.values():
        row = conn.execute("SELECT MAX(at) FROM audit_trail").fetchone()
        if row and row[0]:
            latest = max(latest, datetime.fromisoformat(row[0]))
    return latest
