"""The ``prim`` dialect: tensor primitives that ``nn`` decomposes into."""
