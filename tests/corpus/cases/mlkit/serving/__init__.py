"""Serving helpers: things that are shipped to worker processes by pickle."""
