"""What test modules share: test doubles, sample data and small helpers.

Test modules import from here (and fixtures come from ``tests/conftest.py``); they never import
from one another.
"""
