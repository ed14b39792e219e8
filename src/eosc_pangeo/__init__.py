"""eosc-pangeo: analyse Earth-science data next to the data."""

__version__ = "0.1.0"
