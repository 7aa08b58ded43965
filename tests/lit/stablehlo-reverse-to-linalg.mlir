// RUN: stepwell-opt %s --split-input-file -p stablehlo-reverse-to-linalg | FileCheck %s

// The reversed dim reads index size-1-i; the others are the identity.
// CHECK: #[[IN:map[0-9]*]] = affine_map<(d0, d1) -> (-d0 + 2, d1)>
// CHECK-LABEL: func.func @reverse_rows
// CHECK: linalg.generic {indexing_maps = [#[[IN]], #{{map[0-9]*}}], iterator_types = ["parallel", "parallel"]} ins(%arg0 : tensor<3x4xf32>)
// CHECK-NEXT: ^bb0(%[[A:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT: linalg.yield %[[A]] : f32
// CHECK-NOT: stablehlo.reverse
func.func @reverse_rows(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {
  %0 = stablehlo.reverse %x, dims = [0] : tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// A dynamic reversed dim stays stablehlo (IREE's lowering).
// CHECK-LABEL: func.func @dynamic_stays
// CHECK-NEXT: stablehlo.reverse %arg0, dims = [0]
func.func @dynamic_stays(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %0 = stablehlo.reverse %x, dims = [0] : tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}
