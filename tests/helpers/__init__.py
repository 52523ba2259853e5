"""Test helpers shared by several test modules (fixtures stay in conftest files)."""
