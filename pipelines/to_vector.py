"""linalg -> tiled, vectorized IR (vector.contract, transfers)."""
PASSES = ["to-linalg", "linalg-vectorize", "canonicalize", "cse"]
