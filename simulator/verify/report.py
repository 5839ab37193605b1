"""The verification report: per control, the claim and its citation, the scenarios, the verdict, the evidence.

Verdicts are derived only from scenarios that ran and passed: a technical control is `verified` when a
passing scenario proved an allowed case and another (or the same) proved a refused case. Organisational
and physical controls are checklist items, never passes. Writes the same facts as JSON, self-contained
HTML (Japanese by default), JUnit XML and a terminal summary. This module must never run a scenario.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from jinja2 import Environment, select_autoescape

from simulator.controls.catalogue import Catalogue, Control
from simulator.i18n import Lang, wareki
from simulator.verify.runner import ScenarioResult

__all__ = ["Verdict", "VerificationReport", "build_report"]

#: The areas issue 4 verifies: the linkage components (115 technical controls). The others follow later.
class Verdict:
    VERIFIED = "verified"
    PARTIAL = "partial"
    FAILED = "failed"
    NOT_COVERED = "not_covered"
    CHECKLIST = "checklist"


VERDICT_LABELS = {
    "verified": ("検証済（許可・拒否の両方）", "verified (allowed and refused)"),
    "partial": ("一部のみ検証", "partly verified"),
    "failed": ("不合格", "failed"),
    "not_covered": ("シナリオなし", "no scenario"),
    "checklist": ("シミュレーションでは検証不可（人が確認）", "not verifiable by simulation (human check)"),
}


@dataclass
class ControlEntry:
    control: Control
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    allowed_verified: bool = False
    refused_verified: bool = False
    failed: bool = False

    @property
    def verdict(self) -> str:
        if self.control.kind != "technical":
            return Verdict.CHECKLIST
        if self.failed:
            return Verdict.FAILED
        if self.allowed_verified and self.refused_verified:
            return Verdict.VERIFIED
        if self.allowed_verified or self.refused_verified:
            return Verdict.PARTIAL
        return Verdict.NOT_COVERED

    def as_json(self, sites: list[tuple[str, int]]) -> dict[str, Any]:
        c = self.control
        return {
            "id": c.id,
            "kind": str(c.kind),
            "area": c.area,
            "title_ja": c.title_ja,
            "title_en": c.title_en,
            "profiles": list(c.profiles),
            "enforced_by": list(c.enforced_by),
            "claim_ja": c.claim_ja,
            "claim_en": c.claim_en,
            "sources": [s.cite() for s in c.sources],
            "verdict": self.verdict,
            "allowed_verified": self.allowed_verified,
            "refused_verified": self.refused_verified,
            "scenarios": self.scenarios,
            "evidence": self.evidence,
            "enforced_in_code": [f"{path}:{line}" for path, line in sites],
            "evidence_to_examine": list(getattr(c, "evidence_to_examine", []) or []),
        }


@dataclass
class VerificationReport:
    profile: str | None
    generated_at: datetime
    entries: list[ControlEntry]
    results: list[ScenarioResult]
    sites: dict[str, list[tuple[str, int]]]
    strict: bool

    @property
    def technical_in_scope(self) -> list[ControlEntry]:
        return [e for e in self.entries if e.control.kind == "technical"]

    @property
    def failed_scenarios(self) -> list[ScenarioResult]:
        return [r for r in self.results if not r.passed]

    @property
    def strict_gaps(self) -> list[ControlEntry]:
        return [e for e in self.technical_in_scope if e.verdict != Verdict.VERIFIED]

    @property
    def ok(self) -> bool:
        if self.failed_scenarios or any(e.failed for e in self.entries):
            return False
        return not (self.strict and self.strict_gaps)

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.verdict for e in self.entries))

    # -- writers ----------------------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "profile": self.profile,
            "strict": self.strict,
            "ok": self.ok,
            "summary": {
                "controls": len(self.entries),
                "technical_in_scope": len(self.technical_in_scope),
                "verified": sum(1 for e in self.technical_in_scope if e.verdict == Verdict.VERIFIED),
                "scenarios": len(self.results),
                "scenarios_failed": len(self.failed_scenarios),
                "verdicts": self.counts(),
            },
            "controls": [e.as_json(self.sites.get(e.control.id, [])) for e in self.entries],
            "scenarios": [_scenario_json(r) for r in self.results],
        }

    def write(self, out: Path, lang: Lang) -> dict[str, Path]:
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "report.json", "html": out / "report.html", "junit": out / "junit.xml"}
        data = self.as_json()
        paths["json"].write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        paths["html"].write_text(self.html(data, lang), encoding="utf-8")
        paths["junit"].write_bytes(self.junit())
        return paths

    def html(self, data: dict[str, Any], lang: Lang) -> str:
        env = Environment(autoescape=select_autoescape(["html", "j2"]))
        template = env.from_string(
            resources.files("simulator.verify").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
        )
        return template.render(
            data=data,
            lang=lang,
            labels=VERDICT_LABELS,
            wareki=wareki(self.generated_at),
            t=lambda ja, en: ja if lang == "ja" else en,
        )

    def junit(self) -> bytes:
        suite = ET.Element(
            "testsuite",
            name=f"jukisim verify{' ' + self.profile if self.profile else ''}",
            tests=str(len(self.results)),
            failures=str(len(self.failed_scenarios)),
            errors="0",
            time=f"{sum(r.seconds for r in self.results):.3f}",
            timestamp=self.generated_at.replace(tzinfo=None).isoformat(timespec="seconds"),
        )
        for r in self.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"scenarios.{r.profile}",
                name=r.scenario.id,
                time=f"{r.seconds:.3f}",
            )
            if not r.passed:
                failure = ET.SubElement(case, "failure", message=r.failures[0][:500], type="ExpectationFailed")
                failure.text = "\n".join(r.failures)
        for e in self.strict_gaps if self.strict else []:
            case = ET.SubElement(suite, "testcase", classname="controls.strict", name=e.control.id, time="0")
            ET.SubElement(case, "failure", message=f"{e.control.id}: {e.verdict}", type="StrictCoverage")
        suite.set("tests", str(len(suite)))
        suite.set("failures", str(sum(1 for c in suite if len(c))))
        return bytes(ET.tostring(suite, encoding="utf-8", xml_declaration=True))


def _scenario_json(r: ScenarioResult) -> dict[str, Any]:
    return {
        "id": r.scenario.id,
        "profile": r.profile,
        "title_ja": r.scenario.title_ja,
        "title_en": r.scenario.title_en,
        "file": r.scenario.source,
        "controls": list(r.scenario.controls),
        "passed": r.passed,
        "failures": r.failures,
        "seconds": round(r.seconds, 3),
        "hops": len(r.hops),
        "decisions": len(r.decisions),
    }


def build_report(
    catalogue: Catalogue,
    results: list[ScenarioResult],
    *,
    profile: str | None,
    sites: dict[str, list[tuple[str, int]]],
    strict: bool,
    generated_at: datetime,
) -> VerificationReport:
    controls = catalogue.by_profile(profile) if profile else list(catalogue)
    entries = {c.id: ControlEntry(c) for c in controls}
    for r in results:
        for control_id in r.scenario.controls:
            entry = entries.get(control_id)
            if entry is None:
                continue
            proved = sorted({o for c, o in r.verified() if c == control_id})
            entry.scenarios.append({"id": r.scenario.id, "profile": r.profile, "passed": r.passed, "proved": proved})
            if not r.passed:
                entry.failed = True
        if not r.passed:
            continue
        for ev in r.evidence:
            entry = entries.get(ev["control"])
            if entry is None:
                continue
            if ev["outcome"] == "allow":
                entry.allowed_verified = True
            else:
                entry.refused_verified = True
            decision = ev["decision"]
            entry.evidence.append(
                {
                    "scenario": r.scenario.id,
                    "profile": r.profile,
                    "outcome": ev["outcome"],
                    "component": decision["component"],
                    "reason_ja": decision["reason_ja"],
                    "reason_en": decision["reason_en"],
                    "code": decision.get("code"),
                    "at": decision["at"],
                    "correlation_id": decision.get("correlation_id"),
                    "store": "audit_trail of " + decision["component"],
                }
            )
    ordered = sorted(entries.values(), key=lambda e: (e.control.kind != "technical", e.control.id))
    return VerificationReport(profile, generated_at, ordered, results, sites, strict)


def escape(text: str) -> str:
    return html.escape(text)
