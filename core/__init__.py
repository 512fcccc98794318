"""The ground floor of Parvis: settings and JSON logging, imported by every process; it imports nothing of ours.

Imports run one way (tests/unit/test_layers.py checks it):
    core  <-  contracts  <-  services, gateway  <-  parvis (the command line, the supervisor, the demo data)
"""
__version__ = "0.1.0"
