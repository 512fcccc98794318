"""Agenda: the contributed and moderated public agenda (reference data for now)."""
