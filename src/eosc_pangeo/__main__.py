"""``python -m eosc_pangeo``: the same as the ``eosc-pangeo`` command."""

from .cli import app

app(prog_name="eosc-pangeo")
