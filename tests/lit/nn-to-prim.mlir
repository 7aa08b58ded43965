// RUN: stepwell-opt %s --split-input-file -p nn-to-prim | FileCheck %s

// relu is max against a zero splat.
// CHECK-LABEL: func.func @relu
// CHECK: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : tensor<4x8xf32>
// CHECK: "prim.map"(%arg0, %[[ZERO]]) {fn = "max"}
// CHECK-NOT: "nn.
func.func @relu(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.relu"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// Broadcasting becomes explicit: the bias row is broadcast before the add.
// CHECK-LABEL: func.func @add_broadcast
// CHECK: %[[B:.*]] = "prim.broadcast"(%arg1) {dims = array<i64: 1>} : (tensor<8xf32>) -> tensor<4x8xf32>
// CHECK: "prim.map"(%arg0, %[[B]]) {fn = "add"}
func.func @add_broadcast(%x: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.add"(%x, %b) : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// A size-1 dimension that stretches is reshaped away first.
// CHECK-LABEL: func.func @sub_stretch
// CHECK: "prim.reshape"(%arg0) : (tensor<4x1xf32>) -> tensor<4xf32>
// CHECK: "prim.broadcast"({{.*}}) {dims = array<i64: 0>} : (tensor<4xf32>) -> tensor<4x8xf32>
// CHECK: "prim.map"({{.*}}) {fn = "sub"}
func.func @sub_stretch(%x: tensor<4x1xf32>, %y: tensor<1x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.sub"(%x, %y) : (tensor<4x1xf32>, tensor<1x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// matmul with 2-D weights folds the leading dims of x into rows.
// CHECK-LABEL: func.func @linear
// CHECK: "prim.reshape"(%arg0) : (tensor<2x3x8xf32>) -> tensor<6x8xf32>
// CHECK: "prim.contract"({{.*}}, %arg1) {spec = "mk,kn->mn"} : (tensor<6x8xf32>, tensor<8x5xf32>) -> tensor<6x5xf32>
// CHECK: "prim.reshape"({{.*}}) : (tensor<6x5xf32>) -> tensor<2x3x5xf32>
// CHECK: "prim.broadcast"(%arg2) {dims = array<i64: 2>}
// CHECK: "prim.map"({{.*}}) {fn = "add"}
func.func @linear(%x: tensor<2x3x8xf32>, %w: tensor<8x5xf32>, %b: tensor<5xf32>) -> tensor<2x3x5xf32> {
  %0 = "nn.linear"(%x, %w, %b) : (tensor<2x3x8xf32>, tensor<8x5xf32>, tensor<5xf32>) -> tensor<2x3x5xf32>
  return %0 : tensor<2x3x5xf32>
}

// -----

// Batched matmul broadcasts the batch and contracts as bmk,bkn->bmn.
// CHECK-LABEL: func.func @batch_matmul
// CHECK: "prim.broadcast"(%arg1) {dims = array<i64: 1, 2, 3>} : (tensor<3x8x5xf32>) -> tensor<2x3x8x5xf32>
// CHECK: "prim.contract"({{.*}}) {spec = "bmk,bkn->bmn"} : (tensor<6x4x8xf32>, tensor<6x8x5xf32>) -> tensor<6x4x5xf32>
func.func @batch_matmul(%a: tensor<2x3x4x8xf32>, %b: tensor<3x8x5xf32>) -> tensor<2x3x4x5xf32> {
  %0 = "nn.matmul"(%a, %b) : (tensor<2x3x4x8xf32>, tensor<3x8x5xf32>) -> tensor<2x3x4x5xf32>
  return %0 : tensor<2x3x4x5xf32>
}

// -----

// softmax subtracts the row max before exp, as x + (-max) (the negation on the reduced
// tensor: IREE raises the `sub` form to its slower linalg.softmax).
// CHECK-LABEL: func.func @softmax
// CHECK: %[[M:.*]] = "prim.reduce"(%arg0) {axes = array<i64: 1>, kind = "max"}
// CHECK: %[[N:.*]] = "prim.map"(%[[M]]) {fn = "neg"} : (tensor<4xf32>) -> tensor<4xf32>
// CHECK: %[[MB:.*]] = "prim.broadcast"(%[[N]]) {dims = array<i64: 0>}
// CHECK: %[[D:.*]] = "prim.map"(%arg0, %[[MB]]) {fn = "add"}
// CHECK: %[[E:.*]] = "prim.map"(%[[D]]) {fn = "exp"}
// CHECK: "prim.reduce"(%[[E]]) {axes = array<i64: 1>, kind = "sum"}
// CHECK: "prim.map"(%[[E]], {{.*}}) {fn = "div"}
func.func @softmax(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.softmax"(%x) {axis = -1 : i64} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// Exact gelu uses erf; the tanh form uses tanh.
// CHECK-LABEL: func.func @gelu
// CHECK: {fn = "erf"}
// CHECK: {fn = "tanh"}
func.func @gelu(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = "nn.gelu"(%x) {approximate = false} : (tensor<4xf32>) -> tensor<4xf32>
  %1 = "nn.gelu"(%x) {approximate = true} : (tensor<4xf32>) -> tensor<4xf32>
  return %0, %1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// Norms of bf16 inputs compute in f32 and cast back.
// CHECK-LABEL: func.func @layer_norm_bf16
// CHECK: "prim.cast"(%arg0) : (tensor<2x8xbf16>) -> tensor<2x8xf32>
// CHECK: "prim.reduce"({{.*}}) {axes = array<i64: 1>, kind = "sum"} : (tensor<2x8xf32>) -> tensor<2xf32>
// CHECK: {fn = "rsqrt"}
// CHECK: "prim.cast"({{.*}}) : (tensor<2x8xf32>) -> tensor<2x8xbf16>
func.func @layer_norm_bf16(%x: tensor<2x8xbf16>, %s: tensor<8xbf16>, %b: tensor<8xbf16>) -> tensor<2x8xbf16> {
  %0 = "nn.layer_norm"(%x, %s, %b) {epsilon = 1.0e-05 : f32} : (tensor<2x8xbf16>, tensor<8xbf16>, tensor<8xbf16>) -> tensor<2x8xbf16>
  return %0 : tensor<2x8xbf16>
}

// -----

// Causal attention: contract, scale, iota mask, select, softmax, contract.
// CHECK-LABEL: func.func @attention
// CHECK: "prim.contract"(%arg0, %arg1) {spec = "bhqd,bhkd->bhqk"}
// CHECK: {fn = "mul"}
// CHECK: "prim.iota"() {dim = 0 : i64} : () -> tensor<8x8xi64>
// CHECK: "prim.iota"() {dim = 1 : i64} : () -> tensor<8x8xi64>
// CHECK: {fn = "ge"}
// CHECK: {fn = "select"}
// CHECK: kind = "max"
// CHECK: {fn = "exp"}
// CHECK: "prim.contract"({{.*}}, %arg2) {spec = "bhqk,bhkd->bhqd"}
func.func @attention(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32> {
  %0 = "nn.attention"(%q, %k, %v) {causal = true} : (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %0 : tensor<1x2x8x4xf32>
}

// -----

// SAME padding is resolved to explicit pads; the bias is broadcast over channels.
// CHECK-LABEL: func.func @conv
// CHECK: "prim.conv"(%arg0, %arg1) {dilation = array<i64: 1, 1>, groups = 1 : i64, padding = array<i64: 0, 1, 0, 1>, strides = array<i64: 2, 2>}
// CHECK-SAME: -> tensor<1x4x4x4xf32>
// CHECK: "prim.broadcast"(%arg2) {dims = array<i64: 3>}
func.func @conv(%x: tensor<1x8x8x3xf32>, %w: tensor<3x3x3x4xf32>, %b: tensor<4xf32>) -> tensor<1x4x4x4xf32> {
  %0 = "nn.conv2d"(%x, %w, %b) {padding = "SAME", strides = array<i64: 2, 2>} : (tensor<1x8x8x3xf32>, tensor<3x3x3x4xf32>, tensor<4xf32>) -> tensor<1x4x4x4xf32>
  return %0 : tensor<1x4x4x4xf32>
}

// -----

// Embedding is a gather along the vocabulary axis; mean divides the sum.
// CHECK-LABEL: func.func @embed_mean
// CHECK: "prim.gather"(%arg0, %arg1) {axis = 0 : i64}
// CHECK: "prim.reduce"({{.*}}) {axes = array<i64: 1>, kind = "sum"}
// CHECK: {fn = "div"}
// CHECK: "prim.reshape"({{.*}}) : (tensor<2xf32>) -> tensor<2x1xf32>
func.func @embed_mean(%t: tensor<10x4xf32>, %ids: tensor<2xi32>) -> tensor<2x1xf32> {
  %0 = "nn.embedding"(%t, %ids) : (tensor<10x4xf32>, tensor<2xi32>) -> tensor<2x4xf32>
  %1 = "nn.reduce_mean"(%0) {axes = array<i64: 1>, keepdims = true} : (tensor<2x4xf32>) -> tensor<2x1xf32>
  return %1 : tensor<2x1xf32>
}

// -----

// Shape ops map one to one.
// CHECK-LABEL: func.func @shapes
// CHECK: "prim.transpose"(%arg0) {permutation = array<i64: 1, 0>}
// CHECK: "prim.reshape"
// CHECK: "prim.concat"({{.*}}) {axis = 0 : i64}
// CHECK: "prim.cast"({{.*}}) : (tensor<12xf32>) -> tensor<12xf16>
func.func @shapes(%x: tensor<2x3xf32>) -> tensor<12xf16> {
  %0 = "nn.transpose"(%x) : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %1 = "nn.reshape"(%0) : (tensor<3x2xf32>) -> tensor<6xf32>
  %2 = "nn.concat"(%1, %1) {axis = 0 : i64} : (tensor<6xf32>, tensor<6xf32>) -> tensor<12xf32>
  %3 = "nn.cast"(%2) : (tensor<12xf32>) -> tensor<12xf16>
  return %3 : tensor<12xf16>
}

// -----

// nn.top_k is prim.top_k: two results.
// CHECK-LABEL: func.func @top_k
// CHECK: %[[T:.*]]:2 = "prim.top_k"(%arg0) {k = 2 : i64} : (tensor<4x6xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>)
// CHECK: return %[[T]]#0, %[[T]]#1
func.func @top_k(%x: tensor<4x6xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>) {
  %v, %i = "nn.top_k"(%x) {k = 2 : i64} : (tensor<4x6xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>)
  return %v, %i : tensor<4x2xf32>, tensor<4x2xi32>
}

// -----

// Symbolic batch and sequence: the rows folded for the contraction are a run-time
// product, and the reshape back and the bias broadcast take their sizes from tensor.dim.
// CHECK-LABEL: func.func @linear_dynamic
// CHECK-DAG: %[[B:.*]] = tensor.dim %arg0, %c0 : tensor<?x?x16xf32>
// CHECK-DAG: %[[S:.*]] = tensor.dim %arg0, %c1 : tensor<?x?x16xf32>
// CHECK: %[[ROWS:.*]] = arith.muli %{{.*}}, %{{.*}} : index
// CHECK: %[[X2:.*]] = "prim.reshape"(%arg0, %[[ROWS]]) : (tensor<?x?x16xf32>, index) -> tensor<?x16xf32>
// CHECK: %[[Y:.*]] = "prim.contract"(%[[X2]], %arg1) {spec = "mk,kn->mn"} : (tensor<?x16xf32>, tensor<16x32xf32>) -> tensor<?x32xf32>
// CHECK: "prim.reshape"(%[[Y]], %[[B]], %[[S]]) : (tensor<?x32xf32>, index, index) -> tensor<?x?x32xf32>
// CHECK: "prim.broadcast"(%arg2, %{{.*}}, %{{.*}}) {dims = array<i64: 2>} : (tensor<32xf32>, index, index) -> tensor<?x?x32xf32>
func.func @linear_dynamic(%x: tensor<?x?x16xf32>, %w: tensor<16x32xf32>, %b: tensor<32xf32>) -> tensor<?x?x32xf32> {
  %0 = "nn.linear"(%x, %w, %b) : (tensor<?x?x16xf32>, tensor<16x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
  return %0 : tensor<?x?x32xf32>
}

// -----

// With a capacity, nn.moe_ffn uses slots: positions by a prefix sum over the one-hot
// [N, E] (linear), the inverse map by a scatter, [E, C, D] batched contractions.
// CHECK-LABEL: func.func @moe_slots
// CHECK: "prim.scan"({{.*}}) {axis = 0 : i64} : (tensor<16x4xi32>) -> tensor<16x4xi32>
// CHECK: "prim.scatter"({{.*}}) : (tensor<13xi32>, tensor<16xi32>, tensor<16xi32>) -> tensor<13xi32>
// CHECK: "prim.gather"(%arg0, {{.*}}) {axis = 0 : i64} : (tensor<8x4xf32>, tensor<12xi32>) -> tensor<12x4xf32>
// CHECK: "prim.contract"({{.*}}, %arg3) {spec = "eck,ekn->ecn"} : (tensor<4x3x4xf32>, tensor<4x4x6xf32>) -> tensor<4x3x6xf32>
// CHECK: "prim.contract"({{.*}}, %arg5) {spec = "eck,ekn->ecn"} : (tensor<4x3x6xf32>, tensor<4x6x4xf32>) -> tensor<4x3x4xf32>
// CHECK: "prim.reduce"({{.*}}) {axes = array<i64: 1>, kind = "sum"} : (tensor<8x2x4xf32>) -> tensor<8x4xf32>
// CHECK-NOT: "nn.
func.func @moe_slots(%x: tensor<8x4xf32>, %w: tensor<8x2xf32>, %ids: tensor<8x2xi32>, %wg: tensor<4x4x6xf32>, %wu: tensor<4x4x6xf32>, %wd: tensor<4x6x4xf32>) -> tensor<8x4xf32> {
  %y = "nn.moe_ffn"(%x, %w, %ids, %wg, %wu, %wd) {capacity = 3 : i64} : (tensor<8x4xf32>, tensor<8x2xf32>, tensor<8x2xi32>, tensor<4x4x6xf32>, tensor<4x4x6xf32>, tensor<4x6x4xf32>) -> tensor<8x4xf32>
  return %y : tensor<8x4xf32>
}

// -----

// Dropless, nn.moe_ffn uses the block-padded sorted layout: N + E*(B-1) = 48 rows in
// B = 8 row tiles, one prim.block_ffn over the used tiles.
// CHECK-LABEL: func.func @moe_tiles
// CHECK: "prim.scan"({{.*}}) {axis = 0 : i64} : (tensor<16x4xi32>) -> tensor<16x4xi32>
// CHECK: "prim.scatter"({{.*}}) : (tensor<49xi32>, tensor<16xi32>, tensor<16xi32>) -> tensor<49xi32>
// CHECK: "prim.block_ffn"({{.*}}, {{.*}}, %arg3, %arg4) {activation = "relu", block = 8 : i64} : (tensor<48x4xf32>, tensor<6xi32>, tensor<4x4x6xf32>, tensor<4x6x4xf32>) -> tensor<48x4xf32>
// CHECK-NOT: "nn.
func.func @moe_tiles(%x: tensor<8x4xf32>, %w: tensor<8x2xf32>, %ids: tensor<8x2xi32>, %wg: tensor<4x4x6xf32>, %wd: tensor<4x6x4xf32>) -> tensor<8x4xf32> {
  %y = "nn.moe_ffn"(%x, %w, %ids, %wg, %wd) {activation = "relu"} : (tensor<8x4xf32>, tensor<8x2xf32>, tensor<8x2xi32>, tensor<4x4x6xf32>, tensor<4x6x4xf32>) -> tensor<8x4xf32>
  return %y : tensor<8x4xf32>
}

// -----

// nn.grouped_matmul: group bounds by prefix sums of the sizes, the same block layout,
// one prim.block_matmul.
// CHECK-LABEL: func.func @grouped_matmul
// CHECK: "prim.scan"({{.*}}) {axis = 0 : i64} : (tensor<3xi32>) -> tensor<3xi32>
// CHECK: "prim.block_matmul"({{.*}}, {{.*}}, %arg1) {block = 8 : i64} : (tensor<32x4xf32>, tensor<4xi32>, tensor<3x4x5xf32>) -> tensor<32x5xf32>
func.func @grouped_matmul(%x: tensor<10x4xf32>, %w: tensor<3x4x5xf32>, %s: tensor<3xi32>) -> tensor<10x5xf32> {
  %y = "nn.grouped_matmul"(%x, %w, %s) : (tensor<10x4xf32>, tensor<3x4x5xf32>, tensor<3xi32>) -> tensor<10x5xf32>
  return %y : tensor<10x5xf32>
}

// -----

// A causal mask over a dynamic sequence: iotas of the scores' run-time sizes; the scale
// and the masking value are scalars broadcast to the scores' sizes.
// CHECK-LABEL: func.func @causal_dynamic
// CHECK: %[[SC:.*]] = "prim.contract"(%arg0, %arg0) {spec = "bhqd,bhkd->bhqk"}
// CHECK: "prim.broadcast"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) {dims = array<i64>} : (tensor<f32>, index, index, index) -> tensor<?x4x?x?xf32>
// CHECK: %[[Q:.*]] = tensor.dim %{{.*}}, %c2 : tensor<?x4x?x?xf32>
// CHECK: %[[K:.*]] = tensor.dim %{{.*}}, %c3 : tensor<?x4x?x?xf32>
// CHECK: "prim.iota"(%[[Q]], %[[K]]) {dim = 0 : i64} : (index, index) -> tensor<?x?xi64>
// CHECK: "prim.iota"(%[[Q]], %[[K]]) {dim = 1 : i64} : (index, index) -> tensor<?x?xi64>
// CHECK: {fn = "select"}
// CHECK-NOT: "nn.
func.func @causal_dynamic(%q: tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32> {
  %0 = "nn.attention"(%q, %q, %q) {causal = true} : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  return %0 : tensor<?x4x?x8xf32>
}
