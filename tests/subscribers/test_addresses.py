from __future__ import annotations

import hashlib

import pytest

from digest.errors import InvalidInput
from subscribers.addresses import domain_of, email_hash, normalize, normalize_domain, validate


def test_case_is_folded_everywhere() -> None:
    assert normalize("  Alice.Smith@Example.ORG ") == "alice.smith@example.org"
    assert validate("Alice@Example.ORG") == "Alice@example.org"  # for From: as typed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("User@BÜCHER.example", "user@bücher.example"),
        ("user@xn--bcher-kva.example", "user@bücher.example"),  # IDNA -> Unicode form
        ("用户@例子.广告", "用户@例子.广告"),
    ],
)
def test_international_addresses(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
    assert domain_of(normalize(raw)) == expected.split("@")[1]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("plainaddress", "must have an @-sign"),
        ("a@b@example.org", "invalid characters"),
        ("a..b@example.org", "two periods in a row"),
        ("someone@localhost", "should have a period"),
        ("", "must have an @-sign"),
    ],
)
def test_bad_addresses_say_why(raw: str, why: str) -> None:
    with pytest.raises(InvalidInput) as err:
        normalize(raw)
    message = str(err.value)
    assert message.startswith(f"{raw!r} is not a valid email address: ")
    assert why in message


def test_long_garbage_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidInput) as err:
        normalize("x" * 500)
    assert len(str(err.value)) < 250


def test_hash_is_sha256_of_the_normal_form() -> None:
    address = normalize("Bob@Example.org")
    assert email_hash(address) == hashlib.sha256(b"bob@example.org").hexdigest()
    assert email_hash(normalize("BOB@example.ORG")) == email_hash(address)


def test_domains() -> None:
    assert normalize_domain(" @Mail.Example.ORG ") == "mail.example.org"
    assert normalize_domain("XN--BCHER-KVA.example") == "bücher.example"
    with pytest.raises(InvalidInput, match="not a valid domain"):
        normalize_domain("user@example.org")


@pytest.mark.parametrize(
    "raw",
    [
        "Simple@Example.org",
        "o'brien+tag@sub.example.co.uk",
        "a!#$%&'*+/=?^_`{|}~-z@example.org",
        "first.last@EXAMPLE.ORG",
        ".lead@example.org",
        "trail.@example.org",
        "dou..ble@example.org",
        "l" * 64 + "@example.org",
        "l" * 65 + "@example.org",
        "x@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63 + "." + "g" * 58,
        "x@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63 + "." + "g" * 61,
        "y" * 60 + "@" + "bücher" * 10 + "." + "e" * 63 + "." + "f" * 60 + ".org",
        "Postmaster@Example.org",
        "user@bücher.example",
        "user@xn--bcher-kva.example",
        "user@[192.0.2.1]",
        "user@example.invalid",
        "user@-bad-.example",
        "user@example",
        "user@",
        '"quoted"@example.org',
        "ü@example.org",
    ],
)
def test_fast_path_agrees_with_email_validator(raw: str) -> None:
    """`normalize` skips email-validator for the common shape; it must agree with it."""
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        with pytest.raises(InvalidInput):
            normalize(raw)
        return
    local, _, domain = result.normalized.rpartition("@")
    assert normalize(raw) == f"{local.lower()}@{domain}"


@pytest.mark.parametrize("domain", [
    "Example.COM", "a-b.co", "x.y.z.museum", "ab--cd.com", "xn--bcher-kva.example",
    "localhost.com", "foo.local", "foo.TEST", "a.arpa", "x.onion", "1.2", "a.b1", "a.b-c",
    "-a.com", "a-.com", "a" * 63 + ".com", "a" * 64 + ".com", ("a" * 60 + ".") * 4 + "com",
    "glocal.org", "mail.glocal", "co.uk", "sub_domain.com", "x.c", "x." + "c" * 64,
])
def test_plain_domain_fast_path_agrees_with_email_validator(domain: str) -> None:
    """The cached domain check answers plain ASCII names itself; it must agree."""
    from email_validator import EmailNotValidError, validate_email

    raw = f"someone@{domain}"
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        with pytest.raises(InvalidInput):
            normalize(raw)
        return
    assert normalize(raw) == f"someone@{result.domain}"
