"""Helpers shared by the tests (plain functions and constants; the fixtures live in conftest.py).

Import them as ``from helpers.models import ...``: pytest puts ``tests/`` on ``sys.path`` because the
rootdir conftest lives there (``tests/`` is not a package).
"""
