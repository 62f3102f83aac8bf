"""Training code: Lightning modules, data modules and callbacks."""
