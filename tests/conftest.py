"""Shared test plumbing. Integration fixtures live in plugin modules so each area can use them."""

pytest_plugins = ["tests.asterisk_fixture"]
