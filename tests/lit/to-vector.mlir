// RUN: stepwell-opt %s --to-vector | FileCheck %s

// nn.matmul goes down the whole ladder: nn -> prim -> linalg -> tiled vector IR.
// CHECK-LABEL: func.func @main
// CHECK: scf.for
// CHECK: vector.transfer_read
// CHECK: vector.contract
// CHECK: vector.transfer_write
// CHECK-NOT: nn.
// CHECK-NOT: prim.
// CHECK-NOT: linalg.matmul
func.func @main(%a: tensor<16x64xf32>, %b: tensor<64x32xf32>) -> tensor<16x32xf32> {
  %0 = "nn.matmul"(%a, %b) : (tensor<16x64xf32>, tensor<64x32xf32>) -> tensor<16x32xf32>
  return %0 : tensor<16x32xf32>
}
