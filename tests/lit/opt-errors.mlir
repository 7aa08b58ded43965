// Bad input: one located error line, exit 1, no output file.
// RUN: rm -f %t.out
// RUN: not stepwell-opt %s -o %t.out 2>&1 | FileCheck %s --check-prefix=VERIFY
// RUN: not ls %t.out
// RUN: not stepwell-opt %s -p nn-canonicalise -o %t.out 2>&1 | FileCheck %s --check-prefix=PASS
// RUN: not stepwell-opt %s -p 'nn-canonicalize{fold=1}' 2>&1 | FileCheck %s --check-prefix=OPTION
// RUN: not stepwell-opt %s -p 'canonicalize{max-iterations=x}' 2>&1 | FileCheck %s --check-prefix=UPOPTION
// RUN: not stepwell-opt %t.does-not-exist.mlir 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not stepwell-opt %s --no-such-flag 2>&1 | FileCheck %s --check-prefix=FLAG
// RUN: not ls %t.out

// VERIFY: opt-errors.mlir:21:8: error: 'nn.matmul' contracting dimensions differ: lhs tensor<4x8xf32> has 8, rhs tensor<7x16xf32> has 7
// VERIFY-NOT: Traceback
// PASS: error: unknown pass or pipeline 'nn-canonicalise'; did you mean 'nn-canonicalize'?
// OPTION: error: pass 'nn-canonicalize' has no option 'fold'
// UPOPTION: error: invalid options for pass 'canonicalize'
// MISSING: error: no such file:
// FLAG: error: unrecognized arguments: --no-such-flag

func.func @f(%a: tensor<4x8xf32>, %b: tensor<7x16xf32>) -> tensor<4x16xf32> {
  %0 = "nn.matmul"(%a, %b) : (tensor<4x8xf32>, tensor<7x16xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}
