"""Errors shared by every service."""

from __future__ import annotations


class ContractError(ValueError):
    """A record does not satisfy its contract. The message names the field and the problem."""

    def __init__(self, type_name: str, problem: str) -> None:
        super().__init__(f"{type_name}: {problem}")
        self.type_name = type_name
        self.problem = problem


class SettingsError(ValueError):
    """A setting is missing or invalid. The message names the environment variable."""
