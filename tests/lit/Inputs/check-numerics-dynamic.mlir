// Input of opt-check-numerics.mlir: a dynamic shape cannot be given random inputs.
func.func @main(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %0 = "nn.relu"(%x) : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
