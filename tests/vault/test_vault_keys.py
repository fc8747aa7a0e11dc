"""The keyring and the `KEYRING_SECRET` format (core/vault/keys.py).

Spec: issue 3 "The vault" (32 random bytes, base64; a passphrase only when marked; several keys
with ids; a missing or malformed secret is a clear startup error). docs/vault.md "KEYRING_SECRET".
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.vault.keys import (
    KeyKind,
    Keyring,
    KeyringError,
    MasterKey,
    credentials_info,
    keyring_from_environ,
    next_key_id,
    parse_keyring,
    scrypt_salt,
)

from .vault_testing import K1, K2, K3, b64

PASSPHRASE = "correct horse battery staple"


def test_a_lone_base64_key_is_key_k1() -> None:
    ring = parse_keyring(b64(K1))
    assert ring.ids == ("k1",)
    assert ring.newest == MasterKey.random("k1", K1)
    assert parse_keyring(f"k1:{b64(K1)}") == ring


def test_several_keys_newest_first() -> None:
    ring = parse_keyring(f"k3:{b64(K3)}, k2:{b64(K2)} ,k1:{b64(K1)}\n")
    assert ring.ids == ("k3", "k2", "k1")
    assert ring.newest.secret == K3
    assert ring.get("k1") == MasterKey.random("k1", K1)
    assert ring.get("k9") is None


def test_url_safe_and_unpadded_base64_are_accepted() -> None:
    secret = bytes([0xFB, 0xFF] * 16)  # encodes with '+' and '/' in the standard alphabet
    urlsafe = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    assert parse_keyring(f"k1:{urlsafe}").newest.secret == secret
    assert parse_keyring(b64(secret).rstrip("=")).newest.secret == secret


def test_passphrases_must_be_marked() -> None:
    ring = parse_keyring(f"passphrase:{PASSPHRASE}")
    assert ring.newest == MasterKey.passphrase("k1", PASSPHRASE)
    assert ring.newest.kind is KeyKind.PASSPHRASE
    mixed = parse_keyring(f"k2:{b64(K2)},old:passphrase:with:colons inside")
    assert mixed.get("old") == MasterKey.passphrase("old", "with:colons inside")
    with pytest.raises(KeyringError, match="passphrase must be marked"):
        parse_keyring(PASSPHRASE)


@given(
    st.lists(
        st.one_of(
            st.binary(min_size=32, max_size=32).map(lambda b: (KeyKind.RANDOM, b)),
            st.text(
                alphabet=st.characters(exclude_characters=",", exclude_categories=["Cs"]),
                min_size=12,
                max_size=30,
            )
            .map(str.strip)
            .filter(lambda t: len(t) >= 12)
            .map(lambda t: (KeyKind.PASSPHRASE, t.encode())),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_secret_value_parses_back_to_the_same_keyring(
    secrets: list[tuple[KeyKind, bytes]],
) -> None:
    keys = tuple(
        MasterKey(key_id=f"k{n}", kind=kind, secret=secret)
        for n, (kind, secret) in enumerate(secrets, 1)
    )
    ring = Keyring(keys)
    assert parse_keyring(ring.secret_value()) == ring


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "KEYRING_SECRET is not set: .*`mcp-core keys generate`"),
        ("  ", "KEYRING_SECRET is empty"),
        ("not base64 at all!", "KEYRING_SECRET is not base64 .*passphrase must be marked"),
        (b64(b"short"), "KEYRING_SECRET decodes to 5 bytes, not 32"),
        ("ab" * 32, "decodes to 48 bytes, not 32 .*looks like hex"),
        (f"k2:{b64(K2)},{b64(K1)}", "entry 2 has no key id: with several keys each entry is ID"),
        (f"k1:{b64(K2)},k1:{b64(K1)}", "KEYRING_SECRET: key id 'k1' appears twice"),
        (f"k1:{b64(K1)},", "entry 2 is empty"),
        (f"bad id:{b64(K1)}", "the text before ':' is not a key id"),
        (f"{'x' * 33}:{b64(K1)}", "the text before ':' is not a key id"),
        ("k1:", "KEYRING_SECRET \\(key k1\\): the secret after ':' is empty"),
        ("k1:passphrase:short", "\\(key k1\\): a passphrase is at least 12 characters"),
        (f"k2:passphrase:{PASSPHRASE},x", "entry 2 has no key id.*cannot contain ','"),
        (f"k2:{b64(K2)},k1:{b64(K1)[:-4]}", "entry 2 \\(key k1\\) decodes to 30 bytes"),
    ],
)
def test_malformed_values_are_clear_errors(value: str | None, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        parse_keyring(value)


SECRETS = [
    "Zm9vYmFyYmF6cXV4",  # base64 of the wrong length
    "hunter2-typo$$",  # neither base64 nor marked
    "passphrase:tooShortPw",
]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("shape", ["{s}", "k7:{s}", "k2:{k2},k7:{s}"])
def test_errors_never_quote_the_secret(secret: str, shape: str) -> None:
    with pytest.raises(KeyringError) as caught:
        parse_keyring(shape.format(s=secret, k2=b64(K2)))
    message = str(caught.value)
    assert secret.removeprefix("passphrase:") not in message
    assert b64(K2) not in message
    assert caught.value.__cause__ is None


def test_the_variable_name_is_in_every_message() -> None:
    with pytest.raises(KeyringError, match=r"^MY_VAULT_KEYS is not set"):
        keyring_from_environ({}, variable="MY_VAULT_KEYS")
    with pytest.raises(KeyringError, match=r"^MY_VAULT_KEYS decodes to"):
        keyring_from_environ({"MY_VAULT_KEYS": "abcd"}, variable="MY_VAULT_KEYS")
    assert keyring_from_environ({"KEYRING_SECRET": b64(K1)}).ids == ("k1",)


def test_reprs_show_ids_never_material() -> None:
    ring = Keyring((MasterKey.random("k2", K2), MasterKey.passphrase("k1", PASSPHRASE)))
    for text in (repr(ring), str(ring), repr(ring.newest), str(ring.keys[1]), repr(ring.keys)):
        assert b64(K2) not in text
        assert repr(K2) not in text
        assert PASSPHRASE not in text
    assert repr(ring) == "Keyring(ids=('k2', 'k1'))"


def test_keys_validate_themselves() -> None:
    with pytest.raises(KeyringError, match="32 bytes, not 31"):
        MasterKey.random("k1", K1[:31])
    with pytest.raises(KeyringError, match="key id"):
        MasterKey.random("k:1", K1)
    with pytest.raises(KeyringError, match="reserved"):
        MasterKey.random("passphrase", K1)
    with pytest.raises(KeyringError, match="cannot contain ','"):
        MasterKey.passphrase("k1", "a long passphrase, with a comma")
    with pytest.raises(KeyringError, match="at least one key"):
        Keyring(())
    with pytest.raises(KeyringError, match="'k1' appears twice"):
        Keyring((MasterKey.random("k1", K1), MasterKey.random("k1", K2)))


def test_with_newest_puts_the_new_key_first_and_keeps_the_old() -> None:
    ring = parse_keyring(f"k1:{b64(K1)}").with_newest(MasterKey.random("k2", K2))
    assert ring.ids == ("k2", "k1")
    assert ring.secret_value() == f"k2:{b64(K2)},k1:{b64(K1)}"
    with pytest.raises(KeyringError, match="appears twice"):
        ring.with_newest(MasterKey.random("k1", K3))


@pytest.mark.parametrize(
    ("existing", "expected"),
    [((), "k1"), (("k1",), "k2"), (("k3", "k1"), "k4"), (("prod",), "k1"), (("k9", "x"), "k10")],
)
def test_next_key_id(existing: tuple[str, ...], expected: str) -> None:
    assert next_key_id(existing) == expected


def test_derivation_labels_are_bound_to_the_key_id() -> None:
    assert credentials_info("k1") == b"mcp-core vault v1 credentials\x00\x00\x00\x02k1"
    assert scrypt_salt("k1") == b"mcp-core vault v1 scrypt\x00\x00\x00\x02k1"
    assert credentials_info("k1") != credentials_info("k10")
