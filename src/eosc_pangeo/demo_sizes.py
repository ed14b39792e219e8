"""The sizes the demo data comes in, known to the command line without loading the generator
(NumPy, pandas, netCDF4): ``eosc-pangeo --help`` lists them."""

SIZES = ("small", "medium", "large")
