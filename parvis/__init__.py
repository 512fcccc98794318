"""Parvis: command line, supervisor and demo data."""
__version__ = "0.1.0"
