// Causal self-attention with a pre-layer-norm and a residual connection.
// x: [batch 2, seq 16, width 32], 4 heads of 8.
func.func @main(%x: tensor<2x16x32xf32>, %ln_s: tensor<32xf32>, %ln_b: tensor<32xf32>,
                %wq: tensor<32x32xf32>, %wk: tensor<32x32xf32>, %wv: tensor<32x32xf32>,
                %wo: tensor<32x32xf32>) -> tensor<2x16x32xf32> {
  %h = "nn.layer_norm"(%x, %ln_s, %ln_b) {axis = -1 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x16x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x16x32xf32>
  %q0 = "nn.linear"(%h, %wq) : (tensor<2x16x32xf32>, tensor<32x32xf32>) -> tensor<2x16x32xf32>
  %k0 = "nn.linear"(%h, %wk) : (tensor<2x16x32xf32>, tensor<32x32xf32>) -> tensor<2x16x32xf32>
  %v0 = "nn.linear"(%h, %wv) : (tensor<2x16x32xf32>, tensor<32x32xf32>) -> tensor<2x16x32xf32>
  %q1 = "nn.reshape"(%q0) : (tensor<2x16x32xf32>) -> tensor<2x16x4x8xf32>
  %k1 = "nn.reshape"(%k0) : (tensor<2x16x32xf32>) -> tensor<2x16x4x8xf32>
  %v1 = "nn.reshape"(%v0) : (tensor<2x16x32xf32>) -> tensor<2x16x4x8xf32>
  %q = "nn.transpose"(%q1) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x16x4x8xf32>) -> tensor<2x4x16x8xf32>
  %k = "nn.transpose"(%k1) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x16x4x8xf32>) -> tensor<2x4x16x8xf32>
  %v = "nn.transpose"(%v1) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x16x4x8xf32>) -> tensor<2x4x16x8xf32>
  %a = "nn.attention"(%q, %k, %v) {causal = true} : (tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  %a1 = "nn.transpose"(%a) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x4x16x8xf32>) -> tensor<2x16x4x8xf32>
  %a2 = "nn.reshape"(%a1) : (tensor<2x16x4x8xf32>) -> tensor<2x16x32xf32>
  %o = "nn.linear"(%a2, %wo) : (tensor<2x16x32xf32>, tensor<32x32xf32>) -> tensor<2x16x32xf32>
  %y = "nn.add"(%x, %o) : (tensor<2x16x32xf32>, tensor<2x16x32xf32>) -> tensor<2x16x32xf32>
  return %y : tensor<2x16x32xf32>
}
