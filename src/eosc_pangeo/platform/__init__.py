"""Configuration and running of the platform's services (JupyterHub, Dask Gateway, ...)."""
