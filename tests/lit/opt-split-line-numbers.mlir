// Errors in a later chunk are reported at their line in the whole file.
// RUN: not stepwell-opt %s --split-input-file 2>&1 | FileCheck %s
// CHECK: opt-split-line-numbers.mlir:13:8: error: 'nn.add' expects 2 operands, found 1
// CHECK-NOT: error

func.func @ok(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

func.func @bad(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.add"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
