"""Internal / external, authorship and direction (product.md "Internal / external", "Inbound /
outbound")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.classify import InternalPolicy, author, direction
from monitor.records import Direction, MessageRecord

T = datetime(2026, 11, 20, 14, 5, tzinfo=UTC)
POLICY = InternalPolicy(domains=("example.com",), addresses=("contractor@gmail.com",))


def message(
    from_addr: str | None,
    to: tuple[str, ...] = (),
    cc: tuple[str, ...] = (),
    sender: str | None = None,
) -> MessageRecord:
    return MessageRecord(
        message_id="<m@x>",
        subject="s",
        from_addr=from_addr,
        internal_date=T,
        time=T,
        sender_addr=sender,
        to_addrs=to,
        cc_addrs=cc,
    )


@pytest.mark.parametrize(
    ("addr", "internal"),
    [
        ("priya@example.com", True),
        ("Priya@EXAMPLE.com", True),
        ("priya@eu.example.com", True),  # a parent domain is listed
        ("priya@a.b.example.com", True),
        ("priya@example.com.", True),
        ("contractor@gmail.com", True),  # listed address
        ("CONTRACTOR@gmail.com", True),
        ("someone@gmail.com", False),
        ("priya@badexample.com", False),  # a suffix that is no parent domain
        ("priya@example.com.evil.org", False),
        ("priya@example.co", False),
        ("example.com", False),
        ("@example.com", False),
        ("mailer-daemon", False),
        ("", False),
        (None, False),
    ],
)
def test_is_internal(addr: str | None, internal: bool) -> None:
    assert POLICY.is_internal(addr) is internal


def test_policy_normalises_config_values() -> None:
    policy = InternalPolicy(domains=(" Example.COM ", "@corp.example.org."), addresses=("A@B.C",))
    assert policy.domains == ("example.com", "corp.example.org")
    assert policy.addresses == ("a@b.c",)
    assert policy.is_internal("x@sub.corp.example.org")
    assert policy.is_internal("a@b.c")
    assert InternalPolicy.of(["example.com"]) == InternalPolicy(("example.com",), ())


def test_empty_policy_makes_everyone_external() -> None:
    assert not InternalPolicy().is_internal("priya@example.com")


def test_author_is_internal_sender_other_than_from() -> None:
    sent_as_support = message("support@example.com", sender="priya@example.com")
    assert author(sent_as_support, POLICY) == "priya@example.com"


def test_author_ignores_external_or_same_sender() -> None:
    assert author(message("jane@acme.com", sender="bounces@lists.acme.com"), POLICY) == (
        "jane@acme.com"
    )
    assert author(message("priya@example.com", sender="priya@example.com"), POLICY) == (
        "priya@example.com"
    )
    assert author(message("priya@example.com"), POLICY) == "priya@example.com"
    assert author(message(None), POLICY) is None


def test_author_internal_sender_for_external_from() -> None:
    # product.md: an internal Sender other than From is the human who wrote it.
    assert author(message("jane@acme.com", sender="priya@example.com"), POLICY) == (
        "priya@example.com"
    )


def test_direction_inbound_from_customer() -> None:
    assert direction(message("jane@acme.com", to=("support@example.com",)), POLICY) == (
        Direction.INBOUND
    )


def test_direction_outbound_to_customer() -> None:
    reply = message("priya@example.com", to=("jane@acme.com",))
    assert direction(reply, POLICY) == Direction.OUTBOUND


def test_direction_outbound_when_customer_only_in_cc() -> None:
    reply = message("priya@example.com", to=("sam@example.com",), cc=("jane@acme.com",))
    assert direction(reply, POLICY) == Direction.OUTBOUND


def test_direction_forward_to_colleague_is_internal() -> None:
    forward = message("priya@example.com", to=("sam@example.com",), cc=("lead@eu.example.com",))
    assert direction(forward, POLICY) == Direction.INTERNAL


def test_direction_subdomain_and_listed_addresses_are_internal() -> None:
    note = message("priya@eu.example.com", to=("contractor@gmail.com",))
    assert direction(note, POLICY) == Direction.INTERNAL
    from_contractor = message("contractor@gmail.com", to=("jane@acme.com",))
    assert direction(from_contractor, POLICY) == Direction.OUTBOUND


def test_direction_sent_as_support_by_a_person() -> None:
    reply = message("support@example.com", to=("jane@acme.com",), sender="priya@example.com")
    assert direction(reply, POLICY) == Direction.OUTBOUND


def test_direction_unknown_author_is_inbound() -> None:
    # A From we cannot read may be a customer's: better an SLA clock than a silent miss.
    assert direction(message(None, to=("support@example.com",)), POLICY) == Direction.INBOUND


def test_direction_bare_recipient_words_are_nobody_outside() -> None:
    note = message("priya@example.com", to=("undisclosed-recipients",))
    assert direction(note, POLICY) == Direction.INTERNAL


def test_direction_no_recipients_is_internal() -> None:
    assert direction(message("priya@example.com"), POLICY) == Direction.INTERNAL


labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)


@given(sub=st.lists(labels, max_size=3), local=labels)
def test_every_subdomain_of_an_internal_domain_is_internal(sub: list[str], local: str) -> None:
    domain = ".".join([*sub, "example.com"])
    assert POLICY.is_internal(f"{local}@{domain}")
    assert POLICY.is_internal(f"{local}@{domain.upper()}")
    assert not POLICY.is_internal(f"{local}@{domain}x")
