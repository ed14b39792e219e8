"""eosc-pangeo: analyse Earth-science data next to the data.

A notebook needs nothing more than::

    import eosc_pangeo
    ds = eosc_pangeo.open_dataset("sst", bbox=(-10, 40, 0, 50), time=("2020-01", "2020-03"))
"""

from .lake import open_dataset

__version__ = "0.1.0"

__all__ = ["open_dataset"]
