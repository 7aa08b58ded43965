"""nn -> prim: canonicalize, decompose, simplify."""
PASSES = ["nn-canonicalize", "nn-to-prim", "prim-simplify", "canonicalize", "cse"]
