"""Database URLs: the accepted forms, and refusals that list them and name their source."""

from __future__ import annotations

import pytest

import legato
from legato.errors import ConfigurationError
from legato.storage import (
    DATABASE_ENV,
    DEFAULT_DATABASE_URL,
    URL_FORMS,
    database_url,
    parse_database_url,
)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:///./dir/relative.db", "./dir/relative.db"),
        ("sqlite:////absolute/path.db", "/absolute/path.db"),
        ("SQLite:///upper.db", "upper.db"),
        ("memory://", None),
        ("MEMORY://", None),
    ],
)
def test_accepted_forms_are_taken_apart(url: str, path: str | None) -> None:
    assert parse_database_url(url).path == path


def test_sqlite_synchronous_option_is_kept() -> None:
    assert parse_database_url("sqlite:///x.db?synchronous=normal").options == {
        "synchronous": "normal"
    }


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sqlite:/x.db", "is malformed"),
        ("sqlite:x.db", "is malformed"),
        ("sqlite://x.db", "is malformed"),
        ("sqlite://host/x.db", "is malformed"),
        ("sqlite:///", "names no file"),
        ("memory:", "is malformed"),
        ("memory://x", "is malformed"),
        ("legato.db", "has no scheme"),
        ("mysql://localhost/db", "has an unknown scheme 'mysql'"),
        ("sqlite:///x.db?journal=wal", "unknown option(s) ['journal']"),
    ],
)
def test_malformed_url_is_refused_listing_the_accepted_forms(url: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_database_url(url)

    message = str(caught.value)
    assert message.startswith(f"database URL {url!r}")
    assert reason in message
    if "option" not in reason:
        assert URL_FORMS in message


def test_one_slash_sqlite_url_is_refused_by_the_python_api() -> None:
    with pytest.raises(ConfigurationError, match=r"database URL 'sqlite:/x\.db' is malformed"):
        legato.App("shop", "sqlite:/x.db")
    with pytest.raises(ConfigurationError, match=r"sqlite:///relative\.db"):
        legato.AsyncClient("sqlite:/x.db")


def test_malformed_url_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DATABASE_ENV, "sqlite:/x.db")

    for make in (lambda: database_url(), lambda: legato.App("shop"), lambda: legato.Client()):
        with pytest.raises(ConfigurationError) as caught:
            make()
        assert str(caught.value).startswith(f"{DATABASE_ENV}='sqlite:/x.db' is malformed")


def test_an_explicit_url_wins_over_a_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_ENV, "sqlite:/x.db")

    assert database_url("memory://") == "memory://"


def test_no_url_and_no_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_ENV, raising=False)

    assert database_url() == DEFAULT_DATABASE_URL


# -- PostgreSQL URLs ----


def test_postgres_url_keeps_libpq_options_and_takes_legatos_own() -> None:
    parsed = parse_database_url(
        "postgresql://app:s3cret@db1,db2/shop?target_session_attrs=read-write"
        "&schema=orders&notify=off&readers=2&sslmode=prefer"
    )
    assert parsed.scheme == "postgresql"
    assert parsed.options == {"schema": "orders", "notify": "off", "readers": "2"}
    assert parsed.conninfo == (
        "postgresql://app:s3cret@db1,db2/shop?target_session_attrs=read-write&sslmode=prefer"
    )
    assert parsed.display == (
        "postgresql://app:***@db1,db2/shop?target_session_attrs=read-write"
        "&schema=orders&notify=off&readers=2&sslmode=prefer"
    )


def test_postgres_short_scheme_is_accepted() -> None:
    assert parse_database_url("postgres://localhost/db").conninfo == "postgresql://localhost/db"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://h/db?schema=Orders", "schema 'Orders' is not a plain lower-case SQL name"),
        ("postgresql://h/db?schema=a;drop", "is not a plain lower-case SQL name"),
        ("postgresql://h/db?notify=maybe", "notify is on or off, not 'maybe'"),
        ("postgresql://h/db?readers=0", "readers is a number of connections, 1 to 64"),
        ("postgresql:h/db", "is malformed"),
    ],
)
def test_bad_postgres_url_is_refused_saying_why(url: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_database_url(url)
    assert reason in str(caught.value)
