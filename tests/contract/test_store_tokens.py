"""API tokens on every store: stored by digest, names unique for good, revoked once."""

from __future__ import annotations

from legato.model.tokens import Scope
from legato.storage.base import Store


async def test_a_token_is_found_by_its_digest_and_listed_by_name(store: Store) -> None:
    assert await store.create_token("ci", "d-ci", "operate", 100.0)
    assert await store.create_token("alice", "d-alice", "read", 101.0)
    found = await store.find_token("d-ci")
    assert found is not None and found.name == "ci" and found.scope is Scope.OPERATE
    assert found.active and found.created_at.timestamp() == 100.0
    assert await store.find_token("d-nobody") is None
    assert [t.name for t in await store.list_tokens()] == ["alice", "ci"]


async def test_a_taken_name_or_digest_is_refused_and_changes_nothing(store: Store) -> None:
    assert await store.create_token("ci", "d-1", "read", 100.0)
    assert not await store.create_token("ci", "d-2", "admin", 101.0)
    assert await store.find_token("d-2") is None
    kept = await store.find_token("d-1")
    assert kept is not None and kept.scope is Scope.READ
    assert not await store.create_token("other", "d-1", "admin", 102.0)
    assert [t.name for t in await store.list_tokens()] == ["ci"]


async def test_a_revoked_token_stays_listed_and_its_name_is_not_reused(store: Store) -> None:
    assert await store.create_token("ci", "d-1", "admin", 100.0)
    assert await store.revoke_token("ci", 200.0)
    assert not await store.revoke_token("ci", 300.0)  # once
    assert not await store.revoke_token("nobody", 300.0)
    revoked = await store.find_token("d-1")
    assert revoked is not None and not revoked.active
    assert revoked.revoked_at is not None and revoked.revoked_at.timestamp() == 200.0
    assert not await store.create_token("ci", "d-2", "admin", 400.0)
    assert [(t.name, t.active) for t in await store.list_tokens()] == [("ci", False)]


def test_scopes_allow_what_the_ones_before_them_allow() -> None:
    assert Scope.ADMIN.allows(Scope.OPERATE) and Scope.ADMIN.allows(Scope.READ)
    assert Scope.OPERATE.allows(Scope.READ) and not Scope.OPERATE.allows(Scope.ADMIN)
    assert not Scope.READ.allows(Scope.OPERATE)
