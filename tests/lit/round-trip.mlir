// RUN: stepwell-opt %s | stepwell-opt | FileCheck %s

// Every custom op in generic form survives parse -> verify -> print -> parse -> print.
// Attributes follow DESIGN.md: integer lists array<i64: ...>, integer scalars i64,
// float scalars f32, flags true/false, enums strings; optional operands are left out.
// The printer sorts attributes by name; f32 attributes print in their exact value.

// ===== nn dialect =====

// CHECK-LABEL: func.func @matmul(
// CHECK: %0 = "nn.matmul"(%arg0, %arg1) : (tensor<2x4x8xf32>, tensor<8x16xf32>) -> tensor<2x4x16xf32>
func.func @matmul(%a: tensor<2x4x8xf32>, %b: tensor<8x16xf32>) -> tensor<2x4x16xf32> {
  %0 = "nn.matmul"(%a, %b) : (tensor<2x4x8xf32>, tensor<8x16xf32>) -> tensor<2x4x16xf32>
  return %0 : tensor<2x4x16xf32>
}

// CHECK-LABEL: func.func @linear(
// CHECK: %0 = "nn.linear"(%arg0, %arg1, %arg2) : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK: %1 = "nn.linear"(%arg0, %arg1) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
func.func @linear(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>, %b: tensor<16xf32>) -> (tensor<4x16xf32>, tensor<4x16xf32>) {
  %0 = "nn.linear"(%x, %w, %b) : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %1 = "nn.linear"(%x, %w) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  return %0, %1 : tensor<4x16xf32>, tensor<4x16xf32>
}

// CHECK-LABEL: func.func @conv2d(
// CHECK: %0 = "nn.conv2d"(%arg0, %arg1, %arg2) {padding = "SAME", strides = array<i64: 2, 2>} : (tensor<1x8x8x4xf32>, tensor<3x3x4x8xf32>, tensor<8xf32>) -> tensor<1x4x4x8xf32>
// CHECK: %1 = "nn.conv2d"(%arg0, %arg3) {dilation = array<i64: 2, 1>, groups = 2 : i64, padding = array<i64: 1, 0, 2, 1>} : (tensor<1x8x8x4xf32>, tensor<3x3x2x6xf32>) -> tensor<1x5x9x6xf32>
// CHECK: %2 = "nn.conv2d"(%arg0, %arg1) {padding = "VALID"} : (tensor<1x8x8x4xf32>, tensor<3x3x4x8xf32>) -> tensor<1x6x6x8xf32>
func.func @conv2d(%x: tensor<1x8x8x4xf32>, %w: tensor<3x3x4x8xf32>, %b: tensor<8xf32>, %wg: tensor<3x3x2x6xf32>) -> (tensor<1x4x4x8xf32>, tensor<1x5x9x6xf32>, tensor<1x6x6x8xf32>) {
  %0 = "nn.conv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = "SAME"} : (tensor<1x8x8x4xf32>, tensor<3x3x4x8xf32>, tensor<8xf32>) -> tensor<1x4x4x8xf32>
  %1 = "nn.conv2d"(%x, %wg) {padding = array<i64: 1, 0, 2, 1>, dilation = array<i64: 2, 1>, groups = 2 : i64} : (tensor<1x8x8x4xf32>, tensor<3x3x2x6xf32>) -> tensor<1x5x9x6xf32>
  %2 = "nn.conv2d"(%x, %w) {padding = "VALID"} : (tensor<1x8x8x4xf32>, tensor<3x3x4x8xf32>) -> tensor<1x6x6x8xf32>
  return %0, %1, %2 : tensor<1x4x4x8xf32>, tensor<1x5x9x6xf32>, tensor<1x6x6x8xf32>
}

// CHECK-LABEL: func.func @binary(
// CHECK: %0 = "nn.add"(%arg0, %arg1) : (tensor<4x1x8xf32>, tensor<3x1xf32>) -> tensor<4x3x8xf32>
// CHECK: %1 = "nn.sub"(%0, %arg0) : (tensor<4x3x8xf32>, tensor<4x1x8xf32>) -> tensor<4x3x8xf32>
// CHECK: %2 = "nn.mul"(%1, %arg1) : (tensor<4x3x8xf32>, tensor<3x1xf32>) -> tensor<4x3x8xf32>
// CHECK: %3 = "nn.div"(%2, %arg0) : (tensor<4x3x8xf32>, tensor<4x1x8xf32>) -> tensor<4x3x8xf32>
// CHECK: %4 = "nn.maximum"(%3, %arg1) : (tensor<4x3x8xf32>, tensor<3x1xf32>) -> tensor<4x3x8xf32>
// CHECK: %5 = "nn.minimum"(%4, %arg0) : (tensor<4x3x8xf32>, tensor<4x1x8xf32>) -> tensor<4x3x8xf32>
// CHECK: %6 = "nn.div"(%arg2, %arg2) : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
func.func @binary(%a: tensor<4x1x8xf32>, %b: tensor<3x1xf32>, %i: tensor<4xi32>) -> tensor<4xi32> {
  %0 = "nn.add"(%a, %b) : (tensor<4x1x8xf32>, tensor<3x1xf32>) -> tensor<4x3x8xf32>
  %1 = "nn.sub"(%0, %a) : (tensor<4x3x8xf32>, tensor<4x1x8xf32>) -> tensor<4x3x8xf32>
  %2 = "nn.mul"(%1, %b) : (tensor<4x3x8xf32>, tensor<3x1xf32>) -> tensor<4x3x8xf32>
  %3 = "nn.div"(%2, %a) : (tensor<4x3x8xf32>, tensor<4x1x8xf32>) -> tensor<4x3x8xf32>
  %4 = "nn.maximum"(%3, %b) : (tensor<4x3x8xf32>, tensor<3x1xf32>) -> tensor<4x3x8xf32>
  %5 = "nn.minimum"(%4, %a) : (tensor<4x3x8xf32>, tensor<4x1x8xf32>) -> tensor<4x3x8xf32>
  %6 = "nn.div"(%i, %i) : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
  return %6 : tensor<4xi32>
}

// CHECK-LABEL: func.func @unary(
// CHECK: %0 = "nn.relu"(%arg0) : (tensor<2x5xf32>) -> tensor<2x5xf32>
// CHECK: %1 = "nn.gelu"(%0) : (tensor<2x5xf32>) -> tensor<2x5xf32>
// CHECK: %2 = "nn.gelu"(%1) {approximate = false} : (tensor<2x5xf32>) -> tensor<2x5xf32>
// CHECK: %3 = "nn.silu"(%2) : (tensor<2x5xf32>) -> tensor<2x5xf32>
// CHECK: %4 = "nn.sigmoid"(%3) : (tensor<2x5xf32>) -> tensor<2x5xf32>
// CHECK: %5 = "nn.tanh"(%4) : (tensor<2x5xf32>) -> tensor<2x5xf32>
// CHECK: %6 = "nn.exp"(%5) : (tensor<2x5xf32>) -> tensor<2x5xf32>
func.func @unary(%x: tensor<2x5xf32>) -> tensor<2x5xf32> {
  %0 = "nn.relu"(%x) : (tensor<2x5xf32>) -> tensor<2x5xf32>
  %1 = "nn.gelu"(%0) : (tensor<2x5xf32>) -> tensor<2x5xf32>
  %2 = "nn.gelu"(%1) {approximate = false} : (tensor<2x5xf32>) -> tensor<2x5xf32>
  %3 = "nn.silu"(%2) : (tensor<2x5xf32>) -> tensor<2x5xf32>
  %4 = "nn.sigmoid"(%3) : (tensor<2x5xf32>) -> tensor<2x5xf32>
  %5 = "nn.tanh"(%4) : (tensor<2x5xf32>) -> tensor<2x5xf32>
  %6 = "nn.exp"(%5) : (tensor<2x5xf32>) -> tensor<2x5xf32>
  return %6 : tensor<2x5xf32>
}

// CHECK-LABEL: func.func @normalize(
// CHECK: %0 = "nn.softmax"(%arg0) {axis = -1 : i64} : (tensor<2x16xbf16>) -> tensor<2x16xbf16>
// CHECK: %1 = "nn.softmax"(%0) : (tensor<2x16xbf16>) -> tensor<2x16xbf16>
// CHECK: %2 = "nn.layer_norm"(%1, %arg1, %arg2) {epsilon = 9.99999974E-6 : f32} : (tensor<2x16xbf16>, tensor<16xbf16>, tensor<16xbf16>) -> tensor<2x16xbf16>
// CHECK: %3 = "nn.layer_norm"(%2, %arg3, %arg3) {axis = 0 : i64, epsilon = 9.99999997E-7 : f32} : (tensor<2x16xbf16>, tensor<2xbf16>, tensor<2xbf16>) -> tensor<2x16xbf16>
// CHECK: %4 = "nn.rms_norm"(%3, %arg1) {epsilon = 9.99999974E-6 : f32} : (tensor<2x16xbf16>, tensor<16xbf16>) -> tensor<2x16xbf16>
// CHECK: %5 = "nn.rms_norm"(%4, %arg1) : (tensor<2x16xbf16>, tensor<16xbf16>) -> tensor<2x16xbf16>
func.func @normalize(%x: tensor<2x16xbf16>, %s: tensor<16xbf16>, %b: tensor<16xbf16>, %s2: tensor<2xbf16>) -> tensor<2x16xbf16> {
  %0 = "nn.softmax"(%x) {axis = -1 : i64} : (tensor<2x16xbf16>) -> tensor<2x16xbf16>
  %1 = "nn.softmax"(%0) : (tensor<2x16xbf16>) -> tensor<2x16xbf16>
  %2 = "nn.layer_norm"(%1, %s, %b) {epsilon = 1.0e-05 : f32} : (tensor<2x16xbf16>, tensor<16xbf16>, tensor<16xbf16>) -> tensor<2x16xbf16>
  %3 = "nn.layer_norm"(%2, %s2, %s2) {axis = 0 : i64, epsilon = 1.0e-06 : f32} : (tensor<2x16xbf16>, tensor<2xbf16>, tensor<2xbf16>) -> tensor<2x16xbf16>
  %4 = "nn.rms_norm"(%3, %s) {epsilon = 1.0e-05 : f32} : (tensor<2x16xbf16>, tensor<16xbf16>) -> tensor<2x16xbf16>
  %5 = "nn.rms_norm"(%4, %s) : (tensor<2x16xbf16>, tensor<16xbf16>) -> tensor<2x16xbf16>
  return %5 : tensor<2x16xbf16>
}

// CHECK-LABEL: func.func @attention(
// CHECK: %0 = "nn.attention"(%arg0, %arg1, %arg2, %arg3) {causal = true, scale = 2.500000e-01 : f32} : (tensor<2x4x8x16xf16>, tensor<2x4x6x16xf16>, tensor<2x4x6x32xf16>, tensor<1x1x8x6xi1>) -> tensor<2x4x8x32xf16>
// CHECK: %1 = "nn.attention"(%arg0, %arg1, %arg2) : (tensor<2x4x8x16xf16>, tensor<2x4x6x16xf16>, tensor<2x4x6x32xf16>) -> tensor<2x4x8x32xf16>
func.func @attention(%q: tensor<2x4x8x16xf16>, %k: tensor<2x4x6x16xf16>, %v: tensor<2x4x6x32xf16>, %m: tensor<1x1x8x6xi1>) -> (tensor<2x4x8x32xf16>, tensor<2x4x8x32xf16>) {
  %0 = "nn.attention"(%q, %k, %v, %m) {scale = 2.500000e-01 : f32, causal = true} : (tensor<2x4x8x16xf16>, tensor<2x4x6x16xf16>, tensor<2x4x6x32xf16>, tensor<1x1x8x6xi1>) -> tensor<2x4x8x32xf16>
  %1 = "nn.attention"(%q, %k, %v) : (tensor<2x4x8x16xf16>, tensor<2x4x6x16xf16>, tensor<2x4x6x32xf16>) -> tensor<2x4x8x32xf16>
  return %0, %1 : tensor<2x4x8x32xf16>, tensor<2x4x8x32xf16>
}

// CHECK-LABEL: func.func @embedding(
// CHECK: %0 = "nn.embedding"(%arg0, %arg1) : (tensor<100x16xf32>, tensor<2x7xi32>) -> tensor<2x7x16xf32>
// CHECK: %1 = "nn.embedding"(%arg0, %arg2) : (tensor<100x16xf32>, tensor<5xi64>) -> tensor<5x16xf32>
func.func @embedding(%table: tensor<100x16xf32>, %ids: tensor<2x7xi32>, %ids64: tensor<5xi64>) -> (tensor<2x7x16xf32>, tensor<5x16xf32>) {
  %0 = "nn.embedding"(%table, %ids) : (tensor<100x16xf32>, tensor<2x7xi32>) -> tensor<2x7x16xf32>
  %1 = "nn.embedding"(%table, %ids64) : (tensor<100x16xf32>, tensor<5xi64>) -> tensor<5x16xf32>
  return %0, %1 : tensor<2x7x16xf32>, tensor<5x16xf32>
}

// CHECK-LABEL: func.func @reduce(
// CHECK: %0 = "nn.reduce_sum"(%arg0) {axes = array<i64: 1>, keepdims = true} : (tensor<2x3x4xf32>) -> tensor<2x1x4xf32>
// CHECK: %1 = "nn.reduce_mean"(%arg0) : (tensor<2x3x4xf32>) -> tensor<f32>
// CHECK: %2 = "nn.reduce_max"(%arg0) {axes = array<i64: 0, -1>, keepdims = false} : (tensor<2x3x4xf32>) -> tensor<3xf32>
func.func @reduce(%x: tensor<2x3x4xf32>) -> (tensor<2x1x4xf32>, tensor<f32>, tensor<3xf32>) {
  %0 = "nn.reduce_sum"(%x) {axes = array<i64: 1>, keepdims = true} : (tensor<2x3x4xf32>) -> tensor<2x1x4xf32>
  %1 = "nn.reduce_mean"(%x) : (tensor<2x3x4xf32>) -> tensor<f32>
  %2 = "nn.reduce_max"(%x) {axes = array<i64: 0, -1>, keepdims = false} : (tensor<2x3x4xf32>) -> tensor<3xf32>
  return %0, %1, %2 : tensor<2x1x4xf32>, tensor<f32>, tensor<3xf32>
}

// CHECK-LABEL: func.func @shape(
// CHECK: %0 = "nn.reshape"(%arg0) : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
// CHECK: %1 = "nn.transpose"(%arg0) {permutation = array<i64: 1, 0, 2>} : (tensor<2x3x4xf32>) -> tensor<3x2x4xf32>
// CHECK: %2 = "nn.transpose"(%arg0) : (tensor<2x3x4xf32>) -> tensor<4x3x2xf32>
// CHECK: %3 = "nn.concat"(%arg0, %arg1, %arg0) {axis = 1 : i64} : (tensor<2x3x4xf32>, tensor<2x1x4xf32>, tensor<2x3x4xf32>) -> tensor<2x7x4xf32>
// CHECK: %4 = "nn.cast"(%arg0) : (tensor<2x3x4xf32>) -> tensor<2x3x4xi32>
func.func @shape(%x: tensor<2x3x4xf32>, %y: tensor<2x1x4xf32>) -> (tensor<6x4xf32>, tensor<3x2x4xf32>, tensor<4x3x2xf32>, tensor<2x7x4xf32>, tensor<2x3x4xi32>) {
  %0 = "nn.reshape"(%x) : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  %1 = "nn.transpose"(%x) {permutation = array<i64: 1, 0, 2>} : (tensor<2x3x4xf32>) -> tensor<3x2x4xf32>
  %2 = "nn.transpose"(%x) : (tensor<2x3x4xf32>) -> tensor<4x3x2xf32>
  %3 = "nn.concat"(%x, %y, %x) {axis = 1 : i64} : (tensor<2x3x4xf32>, tensor<2x1x4xf32>, tensor<2x3x4xf32>) -> tensor<2x7x4xf32>
  %4 = "nn.cast"(%x) : (tensor<2x3x4xf32>) -> tensor<2x3x4xi32>
  return %0, %1, %2, %3, %4 : tensor<6x4xf32>, tensor<3x2x4xf32>, tensor<4x3x2xf32>, tensor<2x7x4xf32>, tensor<2x3x4xi32>
}

// CHECK-LABEL: func.func @moe(
// CHECK: %0:2 = "nn.top_k"(%arg0) {k = 2 : i64} : (tensor<6x4xf32>) -> (tensor<6x2xf32>, tensor<6x2xi32>)
// CHECK: %1 = "nn.moe_ffn"(%arg1, %0#0, %0#1, %arg2, %arg3, %arg4) : (tensor<6x8xf32>, tensor<6x2xf32>, tensor<6x2xi32>, tensor<4x8x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> tensor<6x8xf32>
// CHECK: %2 = "nn.moe_ffn"(%arg1, %0#0, %0#1, %arg2, %arg4) {activation = "gelu", capacity = 3 : i64, priority = "choice"} : (tensor<6x8xf32>, tensor<6x2xf32>, tensor<6x2xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> tensor<6x8xf32>
// CHECK: %3 = "nn.grouped_matmul"(%arg1, %arg2, %arg5) : (tensor<6x8xf32>, tensor<4x8x16xf32>, tensor<4xi32>) -> tensor<6x16xf32>
func.func @moe(%l: tensor<6x4xf32>, %x: tensor<6x8xf32>, %wg: tensor<4x8x16xf32>, %wu: tensor<4x8x16xf32>, %wd: tensor<4x16x8xf32>, %s: tensor<4xi32>) -> (tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x16xf32>) {
  %v, %i = "nn.top_k"(%l) {k = 2 : i64} : (tensor<6x4xf32>) -> (tensor<6x2xf32>, tensor<6x2xi32>)
  %0 = "nn.moe_ffn"(%x, %v, %i, %wg, %wu, %wd) : (tensor<6x8xf32>, tensor<6x2xf32>, tensor<6x2xi32>, tensor<4x8x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> tensor<6x8xf32>
  %1 = "nn.moe_ffn"(%x, %v, %i, %wg, %wd) {activation = "gelu", capacity = 3 : i64, priority = "choice"} : (tensor<6x8xf32>, tensor<6x2xf32>, tensor<6x2xi32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> tensor<6x8xf32>
  %2 = "nn.grouped_matmul"(%x, %wg, %s) : (tensor<6x8xf32>, tensor<4x8x16xf32>, tensor<4xi32>) -> tensor<6x16xf32>
  return %0, %1, %2 : tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x16xf32>
}

// -----
// -----
// ===== prim dialect ===== (its cases go below)

// Run-time sizes: index operands after the tensors (one per dynamic result dimension;
// prim.slice's per limit of -1, prim.update_slice's one offset per dimension).
// CHECK-LABEL: func.func @run_time_sizes(
// CHECK: %0 = "prim.broadcast"(%arg0, %dim, %arg1) {dims = array<i64: 0, 2>} : (tensor<?x4xf32>, index, index) -> tensor<?x?x4xf32>
// CHECK: %1 = "prim.iota"(%arg1) {dim = 0 : i64} : (index) -> tensor<?x3xi32>
// CHECK: %2 = "prim.reshape"(%arg0, %arg1) : (tensor<?x4xf32>, index) -> tensor<?x2xf32>
// CHECK: %3 = "prim.slice"(%arg0, %arg1) {limit = array<i64: -1, 4>, start = array<i64: 1, 0>} : (tensor<?x4xf32>, index) -> tensor<?x4xf32>
// CHECK: %4 = "prim.update_slice"(%arg0, %arg2, %arg1, %c0) : (tensor<?x4xf32>, tensor<1x4xf32>, index, index) -> tensor<?x4xf32>
// CHECK: %5 = "nn.reshape"(%arg0, %dim, %arg1) : (tensor<?x4xf32>, index, index) -> tensor<?x?x2xf32>
func.func @run_time_sizes(%x: tensor<?x4xf32>, %n: index, %u: tensor<1x4xf32>) -> (tensor<?x?x4xf32>, tensor<?x3xi32>, tensor<?x2xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x?x2xf32>) {
  %c0 = arith.constant 0 : index
  %d = tensor.dim %x, %c0 : tensor<?x4xf32>
  %0 = "prim.broadcast"(%x, %d, %n) {dims = array<i64: 0, 2>} : (tensor<?x4xf32>, index, index) -> tensor<?x?x4xf32>
  %1 = "prim.iota"(%n) {dim = 0 : i64} : (index) -> tensor<?x3xi32>
  %2 = "prim.reshape"(%x, %n) : (tensor<?x4xf32>, index) -> tensor<?x2xf32>
  %3 = "prim.slice"(%x, %n) {start = array<i64: 1, 0>, limit = array<i64: -1, 4>} : (tensor<?x4xf32>, index) -> tensor<?x4xf32>
  %4 = "prim.update_slice"(%x, %u, %n, %c0) : (tensor<?x4xf32>, tensor<1x4xf32>, index, index) -> tensor<?x4xf32>
  %5 = "nn.reshape"(%x, %d, %n) : (tensor<?x4xf32>, index, index) -> tensor<?x?x2xf32>
  return %0, %1, %2, %3, %4, %5 : tensor<?x?x4xf32>, tensor<?x3xi32>, tensor<?x2xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x?x2xf32>
}
