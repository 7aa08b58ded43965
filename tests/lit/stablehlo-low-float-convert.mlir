// RUN: stepwell-opt %s --split-input-file -p stablehlo-low-float-convert | FileCheck %s

// i32 -> bf16: int -> f32, then rounded to nearest even with integer ops (no
// arith.sitofp to bf16 is left: LLVM would call __truncsfbf2 on AVX2-only CPUs).
// CHECK-LABEL: func.func @int_to_bf16
// CHECK: tensor.dim %arg0
// CHECK: linalg.generic
// CHECK: arith.sitofp %{{.*}} : i32 to f32
// CHECK: arith.bitcast %{{.*}} : f32 to i32
// CHECK: arith.shrui
// CHECK: arith.trunci %{{.*}} : i32 to i16
// CHECK: arith.bitcast %{{.*}} : i16 to bf16
// CHECK-NOT: stablehlo.convert
func.func @int_to_bf16(%x: tensor<?x3xi32>) -> tensor<?x3xbf16> {
  %0 = stablehlo.convert %x : (tensor<?x3xi32>) -> tensor<?x3xbf16>
  return %0 : tensor<?x3xbf16>
}

// -----

// A bool goes through f32 as well (uitofp: true is 1.0); f16 is truncf from f32.
// CHECK-LABEL: func.func @bool_to_low_floats
// CHECK: arith.uitofp %{{.*}} : i1 to f32
// CHECK: arith.bitcast %{{.*}} : i16 to bf16
// CHECK: arith.uitofp %{{.*}} : i1 to f32
// CHECK-NEXT: arith.truncf %{{.*}} : f32 to f16
// CHECK-NOT: stablehlo.convert
func.func @bool_to_low_floats(%b: tensor<8xi1>) -> (tensor<8xbf16>, tensor<8xf16>) {
  %0 = stablehlo.convert %b : (tensor<8xi1>) -> tensor<8xbf16>
  %1 = stablehlo.convert %b : (tensor<8xi1>) -> tensor<8xf16>
  return %0, %1 : tensor<8xbf16>, tensor<8xf16>
}

// -----

// Float -> bf16 rounds in integer ops too, a NaN kept as a quiet NaN (IREE can lose
// arith.truncf's rounding when the value is extended again).
// CHECK-LABEL: func.func @float_to_bf16
// CHECK: arith.bitcast %{{.*}} : f32 to i32
// CHECK: arith.cmpf uno
// CHECK: arith.select %{{.*}}, %{{.*}}, %{{.*}} : i16
// CHECK: arith.bitcast %{{.*}} : i16 to bf16
// CHECK-NOT: stablehlo.convert
func.func @float_to_bf16(%f: tensor<8xf32>) -> tensor<8xbf16> {
  %0 = stablehlo.convert %f : (tensor<8xf32>) -> tensor<8xbf16>
  return %0 : tensor<8xbf16>
}

// -----

// Float -> f16 and int -> f32 stay StableHLO.
// CHECK-LABEL: func.func @left_alone
// CHECK-NEXT: stablehlo.convert %arg0 : (tensor<8xf32>) -> tensor<8xf16>
// CHECK-NEXT: stablehlo.convert %arg1 : (tensor<8xi32>) -> tensor<8xf32>
// CHECK-NOT: linalg.generic
func.func @left_alone(%f: tensor<8xf32>, %i: tensor<8xi32>) -> (tensor<8xf16>, tensor<8xf32>) {
  %0 = stablehlo.convert %f : (tensor<8xf32>) -> tensor<8xf16>
  %1 = stablehlo.convert %i : (tensor<8xi32>) -> tensor<8xf32>
  return %0, %1 : tensor<8xf16>, tensor<8xf32>
}
