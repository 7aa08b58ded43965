// A two-layer MLP: linear -> gelu -> linear, batch 8, 32 -> 64 -> 16.
func.func @main(%x: tensor<8x32xf32>, %w1: tensor<32x64xf32>, %b1: tensor<64xf32>,
                %w2: tensor<64x16xf32>, %b2: tensor<16xf32>) -> tensor<8x16xf32> {
  %h = "nn.linear"(%x, %w1, %b1) : (tensor<8x32xf32>, tensor<32x64xf32>, tensor<64xf32>) -> tensor<8x64xf32>
  %a = "nn.gelu"(%h) {approximate = false} : (tensor<8x64xf32>) -> tensor<8x64xf32>
  %y = "nn.linear"(%a, %w2, %b2) : (tensor<8x64xf32>, tensor<64x16xf32>, tensor<16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}
