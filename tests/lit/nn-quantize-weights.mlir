// RUN: stepwell-opt %s --split-input-file -p 'nn-quantize-weights{group_size=0}' | FileCheck %s
// RUN: stepwell-opt %s --split-input-file -p 'nn-quantize-weights{bits=4 group_size=2 symmetric=false}' | FileCheck %s --check-prefix=INT4

// A linear layer with a constant weight: symmetric int8, one scale per output channel
// (max |w| / 127: 6/127 and 4/127); the bias stays.
// CHECK-LABEL: func.func @linear
// CHECK-DAG: %[[Q:.*]] = arith.constant dense<{{\[\[}}127, -64], [0, 127], [-127, 0], [64, -32]]> : tensor<4x2xi8>
// CHECK-DAG: %[[S:.*]] = arith.constant dense<{{\[\[}}0.0472440943, 0.0314960629]]> : tensor<1x2xf32>
// CHECK: %[[Y:.*]] = "nn.quantized_linear"(%arg0, %[[Q]], %[[S]], %arg1) {bits = 8 : i64, group_size = 0 : i64}
// CHECK-SAME: (tensor<3x4xf32>, tensor<4x2xi8>, tensor<1x2xf32>, tensor<2xf32>) -> tensor<3x2xf32>
// CHECK-NEXT: return %[[Y]]
// INT4-LABEL: func.func @linear
// INT4-DAG: arith.constant dense<{{.*}}> : tensor<4x1xi8>
// INT4-DAG: %[[S:.*]] = arith.constant dense<{{.*}}> : tensor<2x2xf32>
// INT4-DAG: %[[Z:.*]] = arith.constant dense<{{.*}}> : tensor<2x2xi8>
// INT4: "nn.quantized_linear"(%arg0, %{{.*}}, %[[S]], %[[Z]], %arg1) {bits = 4 : i64, group_size = 2 : i64}
// INT4-SAME: -> tensor<3x2xf32>
func.func @linear(%x: tensor<3x4xf32>, %b: tensor<2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[6.0, -2.0], [0.0, 4.0], [-6.0, 0.0], [3.0, -1.0]]> : tensor<4x2xf32>
  %0 = "nn.linear"(%x, %w, %b) : (tensor<3x4xf32>, tensor<4x2xf32>, tensor<2xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// -----

// nn.matmul with a 2-D constant right operand is a linear layer without bias.
// CHECK-LABEL: func.func @matmul
// CHECK: "nn.quantized_linear"(%arg0, %{{.*}}, %{{.*}}) {bits = 8 : i64, group_size = 0 : i64}
// CHECK-SAME: (tensor<2x5x4xf32>, tensor<4x2xi8>, tensor<1x2xf32>) -> tensor<2x5x2xf32>
// CHECK-NOT: nn.matmul
func.func @matmul(%x: tensor<2x5x4xf32>) -> tensor<2x5x2xf32> {
  %w = arith.constant dense<[[1.0, -2.0], [0.5, 4.0], [-1.0, 0.0], [3.0, -1.0]]> : tensor<4x2xf32>
  %0 = "nn.matmul"(%x, %w) : (tensor<2x5x4xf32>, tensor<4x2xf32>) -> tensor<2x5x2xf32>
  return %0 : tensor<2x5x2xf32>
}

// -----

// Weights that are arguments, and activations times activations, are left alone.
// CHECK-LABEL: func.func @not_constant
// CHECK: "nn.linear"(%arg0, %arg1)
// CHECK: "nn.matmul"(%arg0, %arg2)
// CHECK-NOT: quantized_linear
func.func @not_constant(%x: tensor<3x4xf32>, %w: tensor<4x2xf32>, %y: tensor<4x3xf32>) -> (tensor<3x2xf32>, tensor<3x3xf32>) {
  %0 = "nn.linear"(%x, %w) : (tensor<3x4xf32>, tensor<4x2xf32>) -> tensor<3x2xf32>
  %1 = "nn.matmul"(%x, %y) : (tensor<3x4xf32>, tensor<4x3xf32>) -> tensor<3x3xf32>
  return %0, %1 : tensor<3x2xf32>, tensor<3x3xf32>
}

// -----

// A group size that does not divide the in size (3) leaves the layer in float (with
// group_size=0 it is quantized per channel).
// CHECK-LABEL: func.func @indivisible
// CHECK: "nn.quantized_linear"
// INT4-LABEL: func.func @indivisible
// INT4: "nn.linear"
// INT4-NOT: quantized_linear
func.func @indivisible(%x: tensor<1x3xf32>) -> tensor<1x2xf32> {
  %w = arith.constant dense<[[1.0, -2.0], [0.5, 4.0], [-1.0, 0.0]]> : tensor<3x2xf32>
  %0 = "nn.linear"(%x, %w) : (tensor<1x3xf32>, tensor<3x2xf32>) -> tensor<1x2xf32>
  return %0 : tensor<1x2xf32>
}

// -----

// Stacked expert weights [E, in, out] of nn.moe_ffn: per expert, per output channel,
// read through nn.dequantize along axis 1.
// CHECK-LABEL: func.func @moe_experts
// CHECK-DAG: %[[Q:.*]] = arith.constant dense<{{.*}}> : tensor<2x2x2xi8>
// CHECK-DAG: %[[S:.*]] = arith.constant dense<{{.*}}> : tensor<2x1x2xf32>
// CHECK: %[[W:.*]] = "nn.dequantize"(%[[Q]], %[[S]]) {axis = 1 : i64, bits = 8 : i64, group_size = 0 : i64} : (tensor<2x2x2xi8>, tensor<2x1x2xf32>) -> tensor<2x2x2xf32>
// CHECK: "nn.moe_ffn"(%arg0, %arg1, %arg2, %[[W]], {{.*}})
func.func @moe_experts(%x: tensor<3x2xf32>, %w: tensor<3x1xf32>, %i: tensor<3x1xi32>) -> tensor<3x2xf32> {
  %wg = arith.constant dense<[[[1.0, -2.0], [0.5, 4.0]], [[3.0, 1.0], [-6.0, 2.0]]]> : tensor<2x2x2xf32>
  %wd = arith.constant dense<[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]> : tensor<2x2x2xf32>
  %y = "nn.moe_ffn"(%x, %w, %i, %wg, %wd) : (tensor<3x2xf32>, tensor<3x1xf32>, tensor<3x1xi32>, tensor<2x2x2xf32>, tensor<2x2x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
