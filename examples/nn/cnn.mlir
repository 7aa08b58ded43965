// A small CNN: conv3x3 (SAME) -> relu -> depthwise conv (stride 2) -> relu -> mean pool -> linear.
func.func @main(%x: tensor<2x16x16x3xf32>, %w1: tensor<3x3x3x8xf32>, %b1: tensor<8xf32>,
                %w2: tensor<3x3x1x8xf32>, %w3: tensor<8x10xf32>, %b3: tensor<10xf32>) -> tensor<2x10xf32> {
  %c1 = "nn.conv2d"(%x, %w1, %b1) {padding = "SAME"} : (tensor<2x16x16x3xf32>, tensor<3x3x3x8xf32>, tensor<8xf32>) -> tensor<2x16x16x8xf32>
  %r1 = "nn.relu"(%c1) : (tensor<2x16x16x8xf32>) -> tensor<2x16x16x8xf32>
  %c2 = "nn.conv2d"(%r1, %w2) {padding = "SAME", strides = array<i64: 2, 2>, groups = 8 : i64} : (tensor<2x16x16x8xf32>, tensor<3x3x1x8xf32>) -> tensor<2x8x8x8xf32>
  %r2 = "nn.relu"(%c2) : (tensor<2x8x8x8xf32>) -> tensor<2x8x8x8xf32>
  %p = "nn.reduce_mean"(%r2) {axes = array<i64: 1, 2>} : (tensor<2x8x8x8xf32>) -> tensor<2x8xf32>
  %y = "nn.linear"(%p, %w3, %b3) : (tensor<2x8xf32>, tensor<8x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
  return %y : tensor<2x10xf32>
}
