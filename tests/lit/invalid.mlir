// RUN: stepwell-opt %s --split-input-file --verify-diagnostics

// One rejected op per case; each error names the op, says what was expected
// against what was found, and is reported at the op's location.

// ===== nn dialect =====

func.func @matmul_1(%a0: tensor<4x8xf32>, %a1: tensor<7x16xf32>) {
  // expected-error @+1 {{'nn.matmul' contracting dimensions differ: lhs tensor<4x8xf32> has 8, rhs tensor<7x16xf32> has 7}}
  %0 = "nn.matmul"(%a0, %a1) : (tensor<4x8xf32>, tensor<7x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @matmul_2(%a0: tensor<4x8xf32>) {
  // expected-error @+1 {{'nn.matmul' expects 2 operands, found 1}}
  %0 = "nn.matmul"(%a0) : (tensor<4x8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @matmul_3(%a0: tensor<4x8xf32>, %a1: tensor<8x16xf32>) {
  // expected-error @+1 {{'nn.matmul' result #0 type mismatch: expected tensor<4x16xf32>, found tensor<4x15xf32>}}
  %0 = "nn.matmul"(%a0, %a1) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x15xf32>
  return
}

// -----

func.func @linear_1(%a0: tensor<4x8xf32>, %a1: tensor<8x16xf32>, %a2: tensor<8xf32>) {
  // expected-error @+1 {{'nn.linear' bias must have shape [16] (w out size), found tensor<8xf32>}}
  %0 = "nn.linear"(%a0, %a1, %a2) : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @conv2d_1(%a0: tensor<1x8x8x4xf32>, %a1: tensor<3x3x4x8xf32>) {
  // expected-error @+1 {{'nn.conv2d' padding must be "SAME", "VALID" or array<i64: top, bottom, left, right>, found "SAMEISH"}}
  %0 = "nn.conv2d"(%a0, %a1) {padding = "SAMEISH"} : (tensor<1x8x8x4xf32>, tensor<3x3x4x8xf32>) -> tensor<1x8x8x8xf32>
  return
}

// -----

func.func @conv2d_2(%a0: tensor<1x8x8x4xf32>, %a1: tensor<3x3x4x8xf32>) {
  // expected-error @+1 {{'nn.conv2d' padding must have 4 entries (top, bottom, left, right), found [1, 1, 1]}}
  %0 = "nn.conv2d"(%a0, %a1) {padding = array<i64: 1, 1, 1>} : (tensor<1x8x8x4xf32>, tensor<3x3x4x8xf32>) -> tensor<1x8x8x8xf32>
  return
}

// -----

func.func @conv2d_3(%a0: tensor<1x8x8x4xf32>, %a1: tensor<3x3x2x8xf32>) {
  // expected-error @+1 {{'nn.conv2d' w input channels must be 4 (x channels 4 / groups 1), found w tensor<3x3x2x8xf32>}}
  %0 = "nn.conv2d"(%a0, %a1) : (tensor<1x8x8x4xf32>, tensor<3x3x2x8xf32>) -> tensor<1x8x8x8xf32>
  return
}

// -----

func.func @add_1(%a0: tensor<4x3xf32>, %a1: tensor<5xf32>) {
  // expected-error @+1 {{'nn.add' shapes [4, 3], [5] do not broadcast}}
  %0 = "nn.add"(%a0, %a1) : (tensor<4x3xf32>, tensor<5xf32>) -> tensor<4x5xf32>
  return
}

// -----

func.func @sub_1(%a0: tensor<4xf32>, %a1: tensor<4xi32>) {
  // expected-error @+1 {{'nn.sub' operand element types differ: f32, i32}}
  %0 = "nn.sub"(%a0, %a1) : (tensor<4xf32>, tensor<4xi32>) -> tensor<4xf32>
  return
}

// -----

func.func @mul_1(%a0: tensor<4xf32>, %a1: tensor<4xf32>, %a2: tensor<4xf32>) {
  // expected-error @+1 {{'nn.mul' expects 2 operands, found 3}}
  %0 = "nn.mul"(%a0, %a1, %a2) : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @div_1(%a0: tensor<4x1xf32>, %a1: tensor<3xf32>) {
  // expected-error @+1 {{'nn.div' result #0 type mismatch: expected tensor<4x3xf32>, found tensor<4x1xf32>}}
  %0 = "nn.div"(%a0, %a1) : (tensor<4x1xf32>, tensor<3xf32>) -> tensor<4x1xf32>
  return
}

// -----

func.func @maximum_1(%a0: tensor<4xf16>, %a1: tensor<4xbf16>) {
  // expected-error @+1 {{'nn.maximum' operand element types differ: f16, bf16}}
  %0 = "nn.maximum"(%a0, %a1) : (tensor<4xf16>, tensor<4xbf16>) -> tensor<4xf16>
  return
}

// -----

func.func @minimum_1(%a0: tensor<2x4xf32>, %a1: tensor<3x1xf32>) {
  // expected-error @+1 {{'nn.minimum' shapes [2, 4], [3, 1] do not broadcast}}
  %0 = "nn.minimum"(%a0, %a1) : (tensor<2x4xf32>, tensor<3x1xf32>) -> tensor<3x4xf32>
  return
}

// -----

func.func @relu_1(%a0: tensor<4xi32>) {
  // expected-error @+1 {{'nn.relu' x must have a float element type, found tensor<4xi32>}}
  %0 = "nn.relu"(%a0) : (tensor<4xi32>) -> tensor<4xi32>
  return
}

// -----

func.func @gelu_1(%a0: tensor<4xf32>) {
  // expected-error @+1 {{'nn.gelu' attribute 'approximate' must be bool (true/false), found 1 : i64}}
  %0 = "nn.gelu"(%a0) {approximate = 1 : i64} : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @silu_1(%a0: tensor<4xi8>) {
  // expected-error @+1 {{'nn.silu' x must have a float element type, found tensor<4xi8>}}
  %0 = "nn.silu"(%a0) : (tensor<4xi8>) -> tensor<4xi8>
  return
}

// -----

func.func @sigmoid_1(%a0: tensor<4xf32>) {
  // expected-error @+1 {{'nn.sigmoid' result #0 type mismatch: expected tensor<4xf32>, found tensor<4xf16>}}
  %0 = "nn.sigmoid"(%a0) : (tensor<4xf32>) -> tensor<4xf16>
  return
}

// -----

func.func @tanh_1(%a0: tensor<4xi1>) {
  // expected-error @+1 {{'nn.tanh' x must have a float element type, found tensor<4xi1>}}
  %0 = "nn.tanh"(%a0) : (tensor<4xi1>) -> tensor<4xi1>
  return
}

// -----

func.func @exp_1() {
  // expected-error @+1 {{'nn.exp' expects 1 operands, found 0}}
  %0 = "nn.exp"() : () -> tensor<4xf32>
  return
}

// -----

func.func @softmax_1(%a0: tensor<2x4xf32>) {
  // expected-error @+1 {{'nn.softmax' axis 2 is out of range for rank 2}}
  %0 = "nn.softmax"(%a0) {axis = 2 : i64} : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @layer_norm_1(%a0: tensor<2x16xf32>, %a1: tensor<8xf32>, %a2: tensor<16xf32>) {
  // expected-error @+1 {{'nn.layer_norm' scale must have shape [16] (x axis -1), found tensor<8xf32>}}
  %0 = "nn.layer_norm"(%a0, %a1, %a2) : (tensor<2x16xf32>, tensor<8xf32>, tensor<16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @layer_norm_2(%a0: tensor<2x16xf32>, %a1: tensor<2xf32>, %a2: tensor<2xf32>) {
  // expected-error @+1 {{'nn.layer_norm' axis -3 is out of range for rank 2}}
  %0 = "nn.layer_norm"(%a0, %a1, %a2) {axis = -3 : i64} : (tensor<2x16xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @rms_norm_1(%a0: tensor<2x16xf32>, %a1: tensor<2xf32>) {
  // expected-error @+1 {{'nn.rms_norm' scale must have shape [16] (x last axis), found tensor<2xf32>}}
  %0 = "nn.rms_norm"(%a0, %a1) : (tensor<2x16xf32>, tensor<2xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @attention_1(%a0: tensor<2x8x16xf32>, %a1: tensor<2x8x16xf32>, %a2: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'nn.attention' q must have rank 4 [batch, heads, seq, dim], found tensor<2x8x16xf32>}}
  %0 = "nn.attention"(%a0, %a1, %a2) : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_2(%a0: tensor<1x2x8x16xf32>, %a1: tensor<1x2x8x8xf32>, %a2: tensor<1x2x8x16xf32>) {
  // expected-error @+1 {{'nn.attention' q and k head dims differ: q tensor<1x2x8x16xf32> has 16, k tensor<1x2x8x8xf32> has 8}}
  %0 = "nn.attention"(%a0, %a1, %a2) : (tensor<1x2x8x16xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32>
  return
}

// -----

func.func @embedding_1(%a0: tensor<100x16xf32>, %a1: tensor<2x7xf32>) {
  // expected-error @+1 {{'nn.embedding' ids must have element type i32 or i64, found tensor<2x7xf32>}}
  %0 = "nn.embedding"(%a0, %a1) : (tensor<100x16xf32>, tensor<2x7xf32>) -> tensor<2x7x16xf32>
  return
}

// -----

func.func @reduce_sum_1(%a0: tensor<2x3xf32>) {
  // expected-error @+1 {{'nn.reduce_sum' axis 2 is out of range for rank 2}}
  %0 = "nn.reduce_sum"(%a0) {axes = array<i64: 2>} : (tensor<2x3xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @reduce_sum_2(%a0: tensor<2x3xf32>) {
  // expected-error @+1 {{'nn.reduce_sum' axes [0, -2] repeat an axis}}
  %0 = "nn.reduce_sum"(%a0) {axes = array<i64: 0, -2>} : (tensor<2x3xf32>) -> tensor<f32>
  return
}

// -----

func.func @reduce_mean_1(%a0: tensor<2x3xi32>) {
  // expected-error @+1 {{'nn.reduce_mean' x must have a float element type, found tensor<2x3xi32>}}
  %0 = "nn.reduce_mean"(%a0) : (tensor<2x3xi32>) -> tensor<i32>
  return
}

// -----

func.func @reduce_max_1(%a0: tensor<2x3xf32>) {
  // expected-error @+1 {{'nn.reduce_max' result #0 type mismatch: expected tensor<2x1xf32>, found tensor<2xf32>}}
  %0 = "nn.reduce_max"(%a0) {axes = array<i64: 1>, keepdims = true} : (tensor<2x3xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @reshape_1(%a0: tensor<2x3xf32>) {
  // expected-error @+1 {{'nn.reshape' element counts differ: x tensor<2x3xf32> has 6, result tensor<7xf32> has 7}}
  %0 = "nn.reshape"(%a0) : (tensor<2x3xf32>) -> tensor<7xf32>
  return
}

// -----

func.func @reshape_2(%a0: tensor<2x3xf32>) {
  // expected-error @+1 {{'nn.reshape' result element type must be f32 like x, found tensor<6xf16>}}
  %0 = "nn.reshape"(%a0) : (tensor<2x3xf32>) -> tensor<6xf16>
  return
}

// -----

func.func @transpose_1(%a0: tensor<2x3xf32>) {
  // expected-error @+1 {{'nn.transpose' permutation [0, 0] must be a permutation of [0, 1] for rank 2}}
  %0 = "nn.transpose"(%a0) {permutation = array<i64: 0, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  return
}

// -----

func.func @concat_1() {
  // expected-error @+1 {{'nn.concat' expects at least 1 operand, found 0}}
  %0 = "nn.concat"() : () -> tensor<2x3xf32>
  return
}

// -----

func.func @concat_2(%a0: tensor<2x3xf32>, %a1: tensor<3x3xf32>) {
  // expected-error @+1 {{'nn.concat' inputs differ off axis 1 (dimension 0): tensor<2x3xf32> and tensor<3x3xf32>}}
  %0 = "nn.concat"(%a0, %a1) {axis = 1 : i64} : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x6xf32>
  return
}

// -----

func.func @cast_1(%a0: tensor<2x3xf32>) {
  // expected-error @+1 {{'nn.cast' result shape must be [2, 3] like x tensor<2x3xf32>, found tensor<3x2xi32>}}
  %0 = "nn.cast"(%a0) : (tensor<2x3xf32>) -> tensor<3x2xi32>
  return
}

// -----

func.func @unknown_op(%a0: tensor<4xf32>) {
  // expected-error @+1 {{unknown op 'nn.sofmax'; did you mean 'nn.softmax'?}}
  %0 = "nn.sofmax"(%a0) : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @top_k_k(%a0: tensor<4x3xf32>) {
  // expected-error @+1 {{'nn.top_k' k = 4 exceeds the last axis size 3 of x tensor<4x3xf32>}}
  %0:2 = "nn.top_k"(%a0) {k = 4 : i64} : (tensor<4x3xf32>) -> (tensor<4x4xf32>, tensor<4x4xi32>)
  return
}

// -----

func.func @moe_ffn_capacity(%x: tensor<6x4xf32>, %w: tensor<6x2xf32>, %i: tensor<6x2xi32>, %wg: tensor<3x4x5xf32>, %wd: tensor<3x5x4xf32>) {
  // expected-error @+1 {{'nn.moe_ffn' capacity must be >= 0 (0: dropless), found -2}}
  %0 = "nn.moe_ffn"(%x, %w, %i, %wg, %wd) {capacity = -2 : i64} : (tensor<6x4xf32>, tensor<6x2xf32>, tensor<6x2xi32>, tensor<3x4x5xf32>, tensor<3x5x4xf32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @moe_ffn_ids(%x: tensor<6x4xf32>, %w: tensor<6x2xf32>, %i: tensor<6x2xf32>, %wg: tensor<3x4x5xf32>, %wd: tensor<3x5x4xf32>) {
  // expected-error @+1 {{'nn.moe_ffn' ids must have element type i32 or i64, found tensor<6x2xf32>}}
  %0 = "nn.moe_ffn"(%x, %w, %i, %wg, %wd) : (tensor<6x4xf32>, tensor<6x2xf32>, tensor<6x2xf32>, tensor<3x4x5xf32>, tensor<3x5x4xf32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @moe_ffn_experts(%x: tensor<6x4xf32>, %w: tensor<6x2xf32>, %i: tensor<6x2xi32>, %wg: tensor<3x4x5xf32>, %wd: tensor<2x5x4xf32>) {
  // expected-error @+1 {{'nn.moe_ffn' w_down must be [experts, d_ff, d_model] = [3, 5, 4] to match w_gate tensor<3x4x5xf32>, found tensor<2x5x4xf32>}}
  %0 = "nn.moe_ffn"(%x, %w, %i, %wg, %wd) : (tensor<6x4xf32>, tensor<6x2xf32>, tensor<6x2xi32>, tensor<3x4x5xf32>, tensor<2x5x4xf32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @grouped_matmul_sizes(%x: tensor<6x4xf32>, %w: tensor<3x4x5xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{'nn.grouped_matmul' group_sizes tensor<2xi32> must have one entry per group of w tensor<3x4x5xf32>}}
  %0 = "nn.grouped_matmul"(%x, %w, %s) : (tensor<6x4xf32>, tensor<3x4x5xf32>, tensor<2xi32>) -> tensor<6x5xf32>
  return
}

// -----
// ===== prim dialect ===== (its cases go below)

// -----

func.func @broadcast_dynamic_added_dim(%x: tensor<4xf32>) {
  // expected-error @+1 {{'prim.broadcast' dynamic added dimension 0 of tensor<?x4xf32> needs its size (one index operand per dynamic result dimension)}}
  %0 = "prim.broadcast"(%x) {dims = array<i64: 1>} : (tensor<4xf32>) -> tensor<?x4xf32>
  return
}

// -----

func.func @update_slice_offsets(%x: tensor<4x8xf32>, %u: tensor<2x8xf32>, %i: index) {
  // expected-error @+1 {{'prim.update_slice' takes one offset per dimension of tensor<4x8xf32> (2), found 1}}
  %0 = "prim.update_slice"(%x, %u, %i) : (tensor<4x8xf32>, tensor<2x8xf32>, index) -> tensor<4x8xf32>
  return
}

// -----

func.func @nn_reshape_sizes(%x: tensor<?x8xf32>, %i: index) {
  // expected-error @+1 {{'nn.reshape' takes one size per dynamic result dimension of tensor<?x2x4xf32> (1), found 2}}
  %0 = "nn.reshape"(%x, %i, %i) : (tensor<?x8xf32>, index, index) -> tensor<?x2x4xf32>
  return
}
