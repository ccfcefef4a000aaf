"""Fails at import time: the worker must exit with the app-load code and log the traceback."""
raise ImportError("wsgi_broken cannot be imported (expected by the test)")
