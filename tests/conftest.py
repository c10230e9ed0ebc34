"""Wires the fixture modules of tests/fixtures/ in; fixtures themselves live there."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.engine",
]
