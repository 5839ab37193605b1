"""Loading residents back, and the `population` command: good runs, and bad arguments that write nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import synthetic_data as sd
from simulator.errors import InputError
from synthetic_data.cli import app

runner = CliRunner()


def test_load_residents_round_trips(sample_path: Path, sample_population: sd.Population) -> None:
    loaded = list(sd.load_residents(sample_path))
    active = [r for r in sample_population.residents if r.status == "active"]
    assert len(loaded) == len(active) == 20_000
    assert loaded[0] == active[0]
    everyone = list(sd.load_residents(sample_path, include_removed=True))
    assert len(everyone) == len(sample_population.residents)


def test_households_and_events_load_back(sample_path: Path, sample_population: sd.Population) -> None:
    households = list(sd.load_households(sample_path))
    active = [h for h in sample_population.households if h.status == "active"]
    assert len(households) == len(active)
    assert households[0].address == active[0].address
    assert sum(len(h.members) for h in households) == 20_000
    events = list(sd.load_events(sample_path))
    assert [e.event_id for e in events] == [e.event_id for e in sample_population.events]
    assert events[-1].data == sample_population.events[-1].data


def test_the_api_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="profile"):
        sd.generate("osaka", 10, 1)
    with pytest.raises(InputError, match="size"):
        sd.generate("kuwana", 0, 1)
    with pytest.raises(InputError, match="seed"):
        sd.generate("kuwana", 10, -1)
    with pytest.raises(InputError, match="out"):
        sd.write("kuwana", 10, 1, tmp_path / "missing" / "p.sqlite")


def test_generate_and_validate_commands(tmp_path: Path) -> None:
    out = tmp_path / "p.sqlite"
    result = runner.invoke(app, ["generate", "--profile", "kuwana", "--size", "1500", "--seed", "9", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    result = runner.invoke(app, ["validate", str(out)])
    assert result.exit_code == 0 and "0 failed" in result.output
    result = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "x"), "--format", "csv"])
    assert result.exit_code == 0 and (tmp_path / "x" / "residents.csv").is_file()
    rows = (tmp_path / "x" / "meta.csv").read_text(encoding="utf-8")
    assert "kuwana" in rows
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("args", "option", "rule"),
    [
        (["--profile", "osaka", "--size", "10", "--seed", "1"], "--profile", "unknown profile"),
        (["--profile", "kuwana", "--size", "0", "--seed", "1"], "--size", "greater than 0"),
        (["--profile", "kuwana", "--size", "-5", "--seed", "1"], "--size", "greater than 0"),
        (["--profile", "kuwana", "--size", "10", "--seed", "-1"], "--seed", "0 or more"),
    ],
)
def test_bad_arguments_name_the_option_and_write_nothing(
    tmp_path: Path, args: list[str], option: str, rule: str
) -> None:
    out = tmp_path / "p.sqlite"
    result = runner.invoke(app, ["generate", *args, "--out", str(out)])
    assert result.exit_code == 2
    assert option in result.output and rule in result.output
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "p.sqlite"
    result = runner.invoke(app, ["generate", "--profile", "kuwana", "--size", "10", "--seed", "1", "--out", str(missing)])
    assert result.exit_code == 2 and "--out" in result.output and "does not exist" in result.output
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = runner.invoke(app, ["generate", "--profile", "kuwana", "--size", "10", "--seed", "1",
                                     "--out", str(locked / "p.sqlite")])
        if os.geteuid() != 0:  # root may write anywhere
            assert result.exit_code == 2 and "not writable" in result.output
        result = runner.invoke(app, ["generate", "--profile", "kuwana", "--size", "10", "--seed", "1",
                                     "--out", str(tmp_path)])
        assert result.exit_code == 2 and "is a directory" in result.output
    finally:
        locked.chmod(0o700)


def test_an_existing_file_is_replaced_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "p.sqlite"
    out.write_bytes(b"previous")
    result = runner.invoke(app, ["generate", "--profile", "kuwana", "--size", "-1", "--seed", "1", "--out", str(out)])
    assert result.exit_code == 2 and out.read_bytes() == b"previous"
    result = runner.invoke(app, ["validate", str(out)])
    assert result.exit_code == 2 and "not a population database" in result.output
