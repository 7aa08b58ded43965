// RUN: stepwell-opt %s --split-input-file -p stablehlo-split-sum | FileCheck %s

// jnp.sum(x * s): the last wide dim is summed first, the other in a second reduce
// (IREE 3.13 builds an invalid vector.contract for the single reduce).
// CHECK-LABEL: func.func @sum_of_a_product
// CHECK: %[[C:.*]] = stablehlo.constant
// CHECK: %[[P:.*]] = stablehlo.reduce(%{{.*}} init: %[[C]]) applies stablehlo.add across dimensions = [1] : (tensor<5x3xf32>, tensor<f32>) -> tensor<5xf32>
// CHECK: %[[S:.*]] = stablehlo.reduce(%[[P]] init: %[[C]]) applies stablehlo.add across dimensions = [0] : (tensor<5xf32>, tensor<f32>) -> tensor<f32>
// CHECK: return %[[S]]
func.func @sum_of_a_product(%x: tensor<5x3xf32>, %s: tensor<3xf32>) -> tensor<f32> {
  %0 = stablehlo.broadcast_in_dim %s, dims = [1] : (tensor<3xf32>) -> tensor<5x3xf32>
  %1 = stablehlo.multiply %x, %0 : tensor<5x3xf32>
  %c = stablehlo.constant dense<0.000000e+00> : tensor<f32>
  %2 = stablehlo.reduce(%1 init: %c) applies stablehlo.add across dimensions = [0, 1] : (tensor<5x3xf32>, tensor<f32>) -> tensor<f32>
  return %2 : tensor<f32>
}

// -----

// Unit dims do not count as wide; the result keeps its unit dim; a dynamic dim is wide.
// CHECK-LABEL: func.func @unit_and_dynamic
// CHECK: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [1, 3] : (tensor<?x1x1x3xf32>, tensor<f32>) -> tensor<?x1xf32>
// CHECK: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [0] : (tensor<?x1xf32>, tensor<f32>) -> tensor<1xf32>
func.func @unit_and_dynamic(%x: tensor<?x1x1x3xf32>) -> tensor<1xf32> {
  %c = stablehlo.constant dense<0.000000e+00> : tensor<f32>
  %0 = stablehlo.reduce(%x init: %c) applies stablehlo.add across dimensions = [0, 1, 3] : (tensor<?x1x1x3xf32>, tensor<f32>) -> tensor<1xf32>
  return %0 : tensor<1xf32>
}

// -----

// A result with a wide dim (programs fuzzer, seed 100 #4482); three wide dims: the
// second reduce, over the other two, is split again (the pass rewrites to a fixed point).
// CHECK-LABEL: func.func @kept_and_three
// CHECK: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [2] : (tensor<5x3x2xf32>, tensor<f32>) -> tensor<5x3xf32>
// CHECK: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [1] : (tensor<5x3xf32>, tensor<f32>) -> tensor<5xf32>
// CHECK: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [2] : (tensor<5x3x2xf32>, tensor<f32>) -> tensor<5x3xf32>
// CHECK: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [1] : (tensor<5x3xf32>, tensor<f32>) -> tensor<5xf32>
// CHECK: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [0] : (tensor<5xf32>, tensor<f32>) -> tensor<f32>
func.func @kept_and_three(%y: tensor<5x3x2xf32>) -> (tensor<5xf32>, tensor<f32>) {
  %c = stablehlo.constant dense<0.000000e+00> : tensor<f32>
  %0 = stablehlo.reduce(%y init: %c) applies stablehlo.add across dimensions = [1, 2] : (tensor<5x3x2xf32>, tensor<f32>) -> tensor<5xf32>
  %1 = stablehlo.reduce(%y init: %c) applies stablehlo.add across dimensions = [0, 1, 2] : (tensor<5x3x2xf32>, tensor<f32>) -> tensor<f32>
  return %0, %1 : tensor<5xf32>, tensor<f32>
}

// -----

// Left alone: one wide dim, a max.
// CHECK-LABEL: func.func @left_alone
// CHECK-COUNT-2: stablehlo.reduce
// CHECK-NOT: stablehlo.reduce
func.func @left_alone(%x: tensor<5x1xf32>, %y: tensor<5x3x2xf32>) -> (tensor<f32>, tensor<f32>) {
  %c = stablehlo.constant dense<0.000000e+00> : tensor<f32>
  %0 = stablehlo.reduce(%x init: %c) applies stablehlo.add across dimensions = [0, 1] : (tensor<5x1xf32>, tensor<f32>) -> tensor<f32>
  %2 = stablehlo.reduce(%y init: %c) applies stablehlo.maximum across dimensions = [0, 1, 2] : (tensor<5x3x2xf32>, tensor<f32>) -> tensor<f32>
  return %0, %2 : tensor<f32>, tensor<f32>
}
