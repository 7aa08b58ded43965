"""nn -> prim -> linalg: everything IREE needs, no custom op left."""
PASSES = ["to-prim", "prim-to-linalg", "canonicalize", "cse"]
