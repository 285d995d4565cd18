"""Helpers shared by the test packages (plain functions and classes; fixtures live in conftest)."""
