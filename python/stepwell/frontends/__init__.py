"""Frontends: programs from other frameworks into stepwell modules (``frontends.jax``)."""
