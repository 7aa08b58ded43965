"""Op specs of stepwell's dialects: ``nn`` (model level) and ``prim`` (tensor primitives)."""
