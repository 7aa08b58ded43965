// Input of opt-stablehlo-input.mlir: jnp.fft.fft(x).real on a length-5 axis.
module @jit_f {
  func.func public @main(%arg0: tensor<3x5xf32>) -> (tensor<3x5xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.convert %arg0 : (tensor<3x5xf32>) -> tensor<3x5xcomplex<f32>>
    %1 = stablehlo.fft %0, type = FFT, length = [5] : (tensor<3x5xcomplex<f32>>) -> tensor<3x5xcomplex<f32>>
    %2 = stablehlo.real %1 : (tensor<3x5xcomplex<f32>>) -> tensor<3x5xf32>
    return %2 : tensor<3x5xf32>
  }
}
