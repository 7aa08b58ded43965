// IR dumps go to stderr; the result still goes to -o.
// RUN: stepwell-opt %s -p nn-canonicalize,cse --print-ir-after-all -o %t 2>&1 | FileCheck %s --check-prefix=ALL
// RUN: stepwell-opt %s -p nn-canonicalize,cse --print-ir-after-change -o %t 2>&1 | FileCheck %s --check-prefix=CHANGE
// RUN: stepwell-opt %s -p nn-canonicalize,cse --print-ir-before=cse -o %t 2>&1 | FileCheck %s --check-prefix=BEFORE
// RUN: FileCheck %s --check-prefix=OUT --input-file %t
// RUN: stepwell-opt %s -p nn-canonicalize --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC
// RUN: not stepwell-opt %s -p nn-canonicalize --print-ir-before=nn-canonicalise 2>&1 | FileCheck %s --check-prefix=UNKNOWN

// ALL: // -----// IR Dump After nn-canonicalize //----- //
// ALL-NEXT: module {
// ALL: // -----// IR Dump After cse //----- //

// CHANGE: // -----// IR Dump After nn-canonicalize //----- //
// CHANGE-NOT: IR Dump After cse

// BEFORE-NOT: IR Dump Before nn-canonicalize
// BEFORE: // -----// IR Dump Before cse //----- //
// BEFORE-NEXT: module {

// OUT: func.func @f(%arg0: tensor<4xf32>) -> tensor<4xf32> {
// OUT-NEXT: return %arg0 : tensor<4xf32>

// GENERIC: "func.func"()
// GENERIC: "func.return"(%arg0)

// UNKNOWN: error: unknown pass 'nn-canonicalise' in --print-ir-before/after; did you mean 'nn-canonicalize'?

func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.cast"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
