"""Shared fixtures: one run of each flow the tests read (built once per session), and headless Chromium.

Chromium and its driver are Debian's packages, installed with apt-get only when missing (root, as on this
machine and in CI); the browser fixture skips with the reason only when installation is impossible. Nothing
is downloaded from anywhere else: selenium is given the driver's path, so Selenium Manager never fetches one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.training.flows import FlowSession, flow_session
from simulator.training.trace import Trace, load_trace


@dataclass
class Ran:
    trace: Trace
    path: Path
    person: dict[str, Any]
    facts: dict[str, Any]
    population: Any


@pytest.fixture(scope="session")
def linkage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSession]:
    """One world for the query flows the tests read (building a world is the slow part)."""
    with flow_session(data=tmp_path_factory.mktemp("world") / "world") as session:
        yield session


def _run(session: FlowSession, name: str, tmp: Path) -> Ran:
    path = tmp / f"{name}.jsonl"
    run = session.run(name, trace=path)
    return Ran(load_trace(path), path, dict(run.context.person), dict(run.context.facts), run.context.population)


@pytest.fixture(scope="session")
def query_run(linkage: FlowSession, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return _run(linkage, "query", tmp_path_factory.mktemp("query"))


@pytest.fixture(scope="session")
def refused_run(linkage: FlowSession, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return _run(linkage, "refused_query", tmp_path_factory.mktemp("refused"))


@pytest.fixture(scope="session")
def held_run(linkage: FlowSession, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return _run(linkage, "held_query", tmp_path_factory.mktemp("held"))


# -- headless Chromium --------------------------------------------------------------------------------------

PACKAGES = ("chromium", "chromium-driver")
FONT_PACKAGE = "fonts-noto-cjk"  # Japanese glyphs for a readable screenshot; the page works without it


class BrowserUnavailable(RuntimeError):
    """Chromium or its driver is missing and could not be installed; the message says why."""


def _binaries() -> tuple[str | None, str | None]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return browser, driver


def _has_japanese_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    out = subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True, check=False).stdout
    return bool(out.strip())


def _apt(*packages: str) -> str | None:
    """Install with apt-get; returns None on success, else the reason it failed."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available on this machine"
    if os.geteuid() != 0:
        return "installing Debian packages needs root (run the tests as root, as CI does)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"`{' '.join(command)}` failed: {' / '.join(tail)}"
    return None


def ensure_chromium() -> tuple[str, str]:
    """Paths of (chromium, chromedriver), installing Debian's packages first if either is missing."""
    browser, driver = _binaries()
    if browser is None or driver is None:
        failure = _apt(*PACKAGES)
        if failure is not None:
            raise BrowserUnavailable(f"chromium and chromium-driver are missing and could not be installed: {failure}")
        browser, driver = _binaries()
        if browser is None or driver is None:
            raise BrowserUnavailable("apt-get installed chromium and chromium-driver but the binaries were not found")
    if not _has_japanese_font():
        _apt(FONT_PACKAGE)  # best effort: without it the screenshot shows boxes for Japanese text, nothing fails
    return browser, driver


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skips only when they are missing and cannot be installed."""
    try:
        return ensure_chromium()
    except BrowserUnavailable as err:
        pytest.skip(str(err))
