"""Keras 3 layers and models as a small project writes them (torch backend)."""
