"""Answers every path with $WHOAMI (the app's env: which app and generation answered)."""
import os


def app(environ, start_response):
    body = os.environ.get("WHOAMI", "").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
