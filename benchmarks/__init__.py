"""Measured comparisons of tfopt against plain Keras and tfmot (see README.md)."""
