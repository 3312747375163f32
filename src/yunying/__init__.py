"""yunying (运营): an open-source operations system on one data model."""

__version__ = "0.1.0"
