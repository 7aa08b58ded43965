// RUN: stepwell-opt %s --split-input-file -p nn-precision | FileCheck %s
// RUN: stepwell-opt %s --split-input-file -p 'nn-precision{compute=f16 accumulate=f16 keep=softmax}' | FileCheck %s --check-prefix=F16
// RUN: stepwell-opt %s --split-input-file -p 'nn-precision{compute=f32}' | FileCheck %s --check-prefix=NOOP

// A linear layer: the input is cast down, the constant weight is stored in bf16, the
// contraction accumulates into an f32 result and the f32 bias is added to it.
// CHECK-LABEL: func.func @linear
// CHECK-DAG: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<2x3xbf16>
// CHECK-DAG: %[[X:.*]] = "nn.cast"(%arg0) : (tensor<4x2xf32>) -> tensor<4x2xbf16>
// CHECK: %[[Y:.*]] = "nn.linear"(%[[X]], %[[W]], %arg1) : (tensor<4x2xbf16>, tensor<2x3xbf16>, tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: return %[[Y]] : tensor<4x3xf32>
// F16-LABEL: func.func @linear
// F16: "nn.linear"({{.*}}) : (tensor<4x2xf16>, tensor<2x3xf16>, tensor<3xf16>) -> tensor<4x3xf16>
// F16: "nn.cast"({{.*}}) : (tensor<4x3xf16>) -> tensor<4x3xf32>
// NOOP-LABEL: func.func @linear
// NOOP-NOT: nn.cast
func.func @linear(%x: tensor<4x2xf32>, %b: tensor<3xf32>) -> tensor<4x3xf32> {
  %w = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %0 = "nn.linear"(%x, %w, %b) : (tensor<4x2xf32>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}

// -----

// Consecutive low-precision ops pass bf16 values along: no cast pair between gelu and
// the reshape, one cast up before the kept softmax, one back down after it.
// CHECK-LABEL: func.func @chain
// CHECK: %[[A:.*]] = "nn.cast"(%arg0) : (tensor<4x8xf32>) -> tensor<4x8xbf16>
// CHECK-NEXT: %[[G:.*]] = "nn.gelu"(%[[A]]){{.*}}: (tensor<4x8xbf16>) -> tensor<4x8xbf16>
// CHECK-NEXT: %[[R:.*]] = "nn.reshape"(%[[G]]) : (tensor<4x8xbf16>) -> tensor<8x4xbf16>
// CHECK-NEXT: %[[U:.*]] = "nn.cast"(%[[R]]) : (tensor<8x4xbf16>) -> tensor<8x4xf32>
// CHECK-NEXT: %[[S:.*]] = "nn.softmax"(%[[U]]){{.*}}: (tensor<8x4xf32>) -> tensor<8x4xf32>
// CHECK-NEXT: %[[D:.*]] = "nn.cast"(%[[S]]) : (tensor<8x4xf32>) -> tensor<8x4xbf16>
// CHECK-NEXT: %[[E:.*]] = "nn.exp"(%[[D]]) : (tensor<8x4xbf16>) -> tensor<8x4xbf16>
// CHECK-NEXT: %[[O:.*]] = "nn.cast"(%[[E]]) : (tensor<8x4xbf16>) -> tensor<8x4xf32>
// CHECK-NEXT: return %[[O]] : tensor<8x4xf32>
// F16-LABEL: func.func @chain
// NOOP-LABEL: func.func @chain
// F16: "nn.softmax"({{.*}}){{.*}}: (tensor<8x4xf32>) -> tensor<8x4xf32>
func.func @chain(%x: tensor<4x8xf32>) -> tensor<8x4xf32> {
  %0 = "nn.gelu"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "nn.reshape"(%0) : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %2 = "nn.softmax"(%1) {axis = -1 : i64} : (tensor<8x4xf32>) -> tensor<8x4xf32>
  %3 = "nn.exp"(%2) : (tensor<8x4xf32>) -> tensor<8x4xf32>
  return %3 : tensor<8x4xf32>
}

// -----

// Norms and reductions stay in f32 by default; a shape op of an f32 value stays f32.
// CHECK-LABEL: func.func @kept
// CHECK-NOT: nn.cast
// CHECK: "nn.layer_norm"(%arg0, %arg1, %arg2){{.*}}-> tensor<4x8xf32>
// CHECK: "nn.transpose"({{.*}}){{.*}}: (tensor<4x8xf32>) -> tensor<8x4xf32>
// CHECK: "nn.reduce_sum"({{.*}}){{.*}}: (tensor<8x4xf32>) -> tensor<4xf32>
// F16-LABEL: func.func @kept
// F16: "nn.layer_norm"({{.*}}){{.*}}: (tensor<4x8xf16>, tensor<8xf16>, tensor<8xf16>) -> tensor<4x8xf16>
// F16: "nn.reduce_sum"({{.*}}){{.*}}: (tensor<8x4xf16>) -> tensor<4xf16>
func.func @kept(%x: tensor<4x8xf32>, %s: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<4xf32> {
  %0 = "nn.layer_norm"(%x, %s, %b) {epsilon = 1.0e-05 : f32} : (tensor<4x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %1 = "nn.transpose"(%0) {permutation = array<i64: 1, 0>} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %2 = "nn.reduce_sum"(%1) {axes = array<i64: 0>} : (tensor<8x4xf32>) -> tensor<4xf32>
  return %2 : tensor<4xf32>
}

// -----

// A cast pair the program already held folds when it is exact (bf16 -> f32 -> bf16);
// integer operands (embedding ids) are left alone.
// CHECK-LABEL: func.func @fold_and_ints
// CHECK-NOT: "nn.cast"(%arg0)
// CHECK: "nn.embedding"(%arg1, %arg0) : (tensor<10x4xf32>, tensor<3xi32>) -> tensor<3x4xf32>
// CHECK: %[[M:.*]] = "nn.mul"(%arg2, %arg2) : (tensor<4xbf16>, tensor<4xbf16>) -> tensor<4xbf16>
// CHECK: return %{{.*}}, %[[M]]
func.func @fold_and_ints(%ids: tensor<3xi32>, %t: tensor<10x4xf32>, %h: tensor<4xbf16>) -> (tensor<3x4xf32>, tensor<4xbf16>) {
  %0 = "nn.embedding"(%t, %ids) : (tensor<10x4xf32>, tensor<3xi32>) -> tensor<3x4xf32>
  %1 = "nn.cast"(%h) : (tensor<4xbf16>) -> tensor<4xf32>
  %2 = "nn.cast"(%1) : (tensor<4xf32>) -> tensor<4xbf16>
  %3 = "nn.mul"(%2, %2) : (tensor<4xbf16>, tensor<4xbf16>) -> tensor<4xbf16>
  return %0, %3 : tensor<3x4xf32>, tensor<4xbf16>
}

// -----

// A transposed constant (a tied output embedding) becomes a bf16 constant of the
// transposed shape; the f32 table stays for the embedding lookup.
// CHECK-LABEL: func.func @tied
// CHECK-DAG: %[[T:.*]] = arith.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00, 5.000000e+00], [2.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xbf16>
// CHECK-DAG: %[[E:.*]] = arith.constant dense<{{.*}}> : tensor<3x2xf32>
// CHECK-NOT: nn.transpose
// CHECK: "nn.matmul"(%{{.*}}, %[[T]]) : (tensor<4x2xbf16>, tensor<2x3xbf16>) -> tensor<4x3xf32>
// CHECK: "nn.embedding"(%[[E]], %arg1)
func.func @tied(%x: tensor<4x2xf32>, %ids: tensor<4xi32>) -> (tensor<4x3xf32>, tensor<4x2xf32>) {
  %e = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %t = "nn.transpose"(%e) {permutation = array<i64: 1, 0>} : (tensor<3x2xf32>) -> tensor<2x3xf32>
  %0 = "nn.matmul"(%x, %t) : (tensor<4x2xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>
  %1 = "nn.embedding"(%e, %ids) : (tensor<3x2xf32>, tensor<4xi32>) -> tensor<4x2xf32>
  return %0, %1 : tensor<4x3xf32>, tensor<4x2xf32>
}

// -----

// nn.moe_ffn computes in bf16 with an f32 result; the routing weights and nn.top_k
// stay f32 (the choice of experts does not change).
// CHECK-LABEL: func.func @moe
// CHECK: %[[T:.*]]:2 = "nn.top_k"(%arg1) {k = 2 : i64} : (tensor<8x3xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
// CHECK: "nn.moe_ffn"({{.*}}, %[[T]]#0, %[[T]]#1, {{.*}}) : (tensor<8x4xbf16>, tensor<8x2xf32>, tensor<8x2xi32>, tensor<3x4x6xbf16>, tensor<3x6x4xbf16>) -> tensor<8x4xf32>
func.func @moe(%x: tensor<8x4xf32>, %l: tensor<8x3xf32>, %wg: tensor<3x4x6xf32>, %wd: tensor<3x6x4xf32>) -> tensor<8x4xf32> {
  %v, %i = "nn.top_k"(%l) {k = 2 : i64} : (tensor<8x3xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  %y = "nn.moe_ffn"(%x, %v, %i, %wg, %wd) : (tensor<8x4xf32>, tensor<8x2xf32>, tensor<8x2xi32>, tensor<3x4x6xf32>, tensor<3x6x4xf32>) -> tensor<8x4xf32>
  return %y : tensor<8x4xf32>
}
