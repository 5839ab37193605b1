"""The CS key module (CS-011): signs inside, refuses export, and a copied store opens on no other device."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import pytest

from simulator.components.hsm import KeyModule, KeyModuleError
from simulator.store.db import connect


def _module(path: Path, secret: bytes) -> KeyModule:
    return KeyModule(connect(path), "kuwana.municipal_cs.hsm", secret)


def test_signs_inside_and_the_signature_verifies(tmp_path: Path) -> None:
    module = _module(tmp_path / "cs.sqlite", secrets.token_bytes(32))
    module.generate("jukinet-auth")
    signature = module.sign("jukinet-auth", b"challenge")
    assert module.verify("jukinet-auth", b"challenge", signature)
    assert not module.verify("jukinet-auth", b"other", signature)


def test_export_is_refused_and_the_attribute_cannot_be_changed(tmp_path: Path) -> None:
    module = _module(tmp_path / "cs.sqlite", secrets.token_bytes(32))
    module.generate("jukinet-auth")
    with pytest.raises(KeyModuleError, match="non-extractable"):
        module.export("jukinet-auth")
    with pytest.raises(sqlite3.IntegrityError):
        module.conn.execute("UPDATE hsm_objects SET extractable = 1")


def test_a_copied_store_yields_no_usable_key_on_another_device(tmp_path: Path) -> None:
    original = _module(tmp_path / "cs.sqlite", secrets.token_bytes(32))
    original.generate("jukinet-auth")
    original.conn.commit()
    copy = _module(tmp_path / "cs.sqlite", secrets.token_bytes(32))
    with pytest.raises(KeyModuleError, match="does not open on this device"):
        copy.sign("jukinet-auth", b"challenge")
    stored = b"".join(bytes(r[0]) for r in original.conn.execute("SELECT wrapped FROM hsm_objects"))
    assert b"PRIVATE KEY" not in stored
