// stepwell-opt --check-numerics: the module runs before and after every pass on the same
// seeded inputs (numpy references while nn/prim ops remain, IREE after), with a report.
// RUN: stepwell-opt %s --split-input-file --check-numerics --to-linalg -o %t.mlir 2>&1 | FileCheck %s
// RUN: FileCheck %s --check-prefix=OUT < %t.mlir
// RUN: stepwell-opt %s --check-numerics --to-vector -o %t.vec.mlir 2>&1 | FileCheck %s --check-prefix=VEC
// RUN: not stepwell-opt %S/Inputs/check-numerics-dynamic.mlir --check-numerics -p nn-to-prim 2>&1 | FileCheck %s --check-prefix=DYN

// CHECK:      check-numerics: after 'input': ok (interpreter)
// CHECK-NEXT: check-numerics: after 'nn-canonicalize': IR unchanged
// CHECK-NEXT: check-numerics: after 'nn-to-prim': ok (interpreter, max abs error
// CHECK:      check-numerics: after 'prim-to-linalg': ok (iree, max abs error
// CHECK-NOT:  error:
// CHECK:      check-numerics: summary: {{[0-9]+}} checked, 0 skipped
// VEC:        check-numerics: after 'linalg-vectorize': skipped (
// VEC:        check-numerics: summary: {{[0-9]+}} checked, 1 skipped (not checked: linalg-vectorize)
// OUT:        func.func @main
// OUT:        linalg.generic
// OUT-NOT:    "nn.
// DYN: error: --check-numerics: argument 0 of @main has type tensor<?x8xf32> with dynamic dimensions: give the inputs explicitly

func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>, %b: tensor<16xf32>) -> tensor<4x16xf32> {
  %0 = "nn.linear"(%x, %w, %b) : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %1 = "nn.gelu"(%0) {approximate = true} : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %2 = "nn.softmax"(%1) {axis = -1 : i64} : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %2 : tensor<4x16xf32>
}
