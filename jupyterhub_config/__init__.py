"""The hub's configuration: the site file schema, its loader and the apply_* functions."""
