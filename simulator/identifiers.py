"""Identifier formulas: 住民票コード (resident code) and 個人番号 (My Number), with their check digits.

One implementation, shared by the J-LIS component and the synthetic-population generator, so a number
the generator makes is one the national server would accept and vice versa.
This module must never hold state or keys of its own: the key that turns a 住民票コード into a 個人番号
belongs to J-LIS (機構) and is passed in.

Formulas:
- 個人番号: 11 digits + 1 check digit, 行政手続における特定の個人を識別するための番号の利用等に関する法律
  施行令第8条 and 総務省令第85号第5条: remainder r = Σ Pn·Qn mod 11 over the 11 digits, Pn counted from the
  lowest digit, Qn = n+1 (1≤n≤6), n−5 (7≤n≤11); check = 0 if r ≤ 1 else 11 − r.
- 住民票コード: 10 random digits + 1 check digit, 住民基本台帳法施行規則第1条 with the 算式 of 平成14年総務省告示
  第436号, which has the same modulus-11 shape over the 10 digits (weights 2..7 from the lowest digit).
- 個人番号 from 住民票コード: 番号法施行令第8条 requires the number be derived from the 住民票コード by 機構 so that
  the code cannot be recovered from it. We use a keyed format-preserving permutation of the 11-digit space
  (a Feistel network with AES as its round function, cycle-walking into range), so distinct codes can never
  collide and the mapping cannot be inverted without 機構's key.
"""

from __future__ import annotations

import re
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "IdentifierError",
    "check_digit_mod11",
    "is_valid_my_number",
    "is_valid_resident_code",
    "my_number_check_digit",
    "my_number_from_resident_code",
    "new_resident_code",
    "resident_code_check_digit",
    "resident_code_from_body",
    "validate_my_number",
    "validate_resident_code",
]

_DIGITS = re.compile(r"[0-9]+")


class IdentifierError(ValueError):
    """A number that is not a valid 住民票コード or 個人番号; the message names the field and the rule."""

    def __init__(self, field: str, rule: str, value: str) -> None:
        self.field = field
        self.rule = rule
        masked = value if len(value) <= 4 else "*" * (len(value) - 4) + value[-4:]
        super().__init__(f"{field}: {rule} (got {masked!r})")


def check_digit_mod11(body: str) -> int:
    """Modulus-11 check digit with weights 2..7 counted from the lowest digit (the 総務省令 shape)."""
    total = 0
    for n, ch in enumerate(reversed(body), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(ch) * weight
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def my_number_check_digit(body11: str) -> int:
    if len(body11) != 11 or not _DIGITS.fullmatch(body11):
        raise IdentifierError("my_number", "the body must be exactly 11 digits", body11)
    return check_digit_mod11(body11)


def resident_code_check_digit(body10: str) -> int:
    if len(body10) != 10 or not _DIGITS.fullmatch(body10):
        raise IdentifierError("resident_code", "the body must be exactly 10 digits", body10)
    return check_digit_mod11(body10)


def validate_my_number(value: str) -> str:
    """Return the number unchanged, or raise IdentifierError naming the rule it breaks."""
    if len(value) != 12 or not _DIGITS.fullmatch(value):
        raise IdentifierError("my_number", "個人番号 must be exactly 12 digits", value)
    if int(value[-1]) != check_digit_mod11(value[:11]):
        raise IdentifierError("my_number", "検査用数字 does not match (総務省令第85号第5条)", value)
    return value


def validate_resident_code(value: str) -> str:
    if len(value) != 11 or not _DIGITS.fullmatch(value):
        raise IdentifierError("resident_code", "住民票コード must be exactly 11 digits", value)
    if int(value[-1]) != check_digit_mod11(value[:10]):
        raise IdentifierError("resident_code", "検査数字 does not match (施行規則第1条)", value)
    return value


def is_valid_my_number(value: str) -> bool:
    try:
        validate_my_number(value)
    except IdentifierError:
        return False
    return True


def is_valid_resident_code(value: str) -> bool:
    try:
        validate_resident_code(value)
    except IdentifierError:
        return False
    return True


def resident_code_from_body(body10: str) -> str:
    return body10 + str(resident_code_check_digit(body10))


def new_resident_code() -> str:
    """A fresh random 住民票コード (10 random digits + check digit), as 機構 allocates them."""
    return resident_code_from_body(f"{secrets.randbelow(10**10):010d}")


# --- 個人番号 generation: a keyed permutation of 0 .. 10**11 - 1 ------------------------------------------

_DOMAIN = 10**11
_HALF_BITS = 19  # 2 * 19 = 38 bits ≥ log2(10**11) ≈ 36.5, so cycle-walking ends after a few steps at most
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUNDS = 8


def _feistel(key: bytes, tweak: int, value: int) -> int:
    left, right = value >> _HALF_BITS, value & _HALF_MASK
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    for rnd in range(_ROUNDS):
        block = rnd.to_bytes(2, "big") + tweak.to_bytes(6, "big") + right.to_bytes(8, "big")
        f = int.from_bytes(encryptor.update(block)[:4], "big") & _HALF_MASK
        left, right = right, left ^ f
    return (left << _HALF_BITS) | right


def my_number_from_resident_code(resident_code: str, key: bytes, generation: int = 0) -> str:
    """Derive the 個人番号 for a 住民票コード with 機構's key.

    ``generation`` selects a different permutation when a 個人番号 is changed (番号法第7条第2項): the national
    server keeps the set of numbers ever issued and moves to the next generation on the rare collision.
    """
    validate_resident_code(resident_code)
    if len(key) not in (16, 24, 32):
        raise IdentifierError("key", "機構's number-generation key must be an AES key (16, 24 or 32 bytes)", "")
    value = int(resident_code)
    while True:  # cycle-walk: the permutation is on 2**38 values; walk until the result is an 11-digit number
        value = _feistel(key, generation, value)
        if value < _DOMAIN:
            break
    body = f"{value:011d}"
    return body + str(check_digit_mod11(body))
