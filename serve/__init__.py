"""Serving: settings, the model registry, the command line and the HTTP API."""
