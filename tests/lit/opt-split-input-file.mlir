// Each chunk is parsed, verified and transformed alone; the outputs are joined
// by the same separator, and a failing chunk does not stop the others.
// RUN: stepwell-opt %s --split-input-file -p nn-canonicalize | FileCheck %s
// RUN: not stepwell-opt %s -p nn-canonicalize 2>&1 | FileCheck %s --check-prefix=WHOLE

// CHECK-LABEL: func.func @first
// CHECK-NEXT: return %arg0
// CHECK: // -----
// CHECK-LABEL: func.func @first
// CHECK-NEXT: "nn.relu"
// WHOLE: error: redefinition of symbol named 'first'
func.func @first(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.reshape"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// The same symbol again: fine in its own chunk.
func.func @first(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.relu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
