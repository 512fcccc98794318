"""Dependency providers and entrypoints shared by every Parvis service."""
