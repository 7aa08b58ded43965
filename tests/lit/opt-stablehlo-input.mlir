// StableHLO as JAX emits it (Shardy annotations included) is a valid input of
// stepwell-opt and stepwell compile; what IREE cannot compile is named.
// RUN: stepwell-opt %s | FileCheck %s
// RUN: stepwell-opt %s --input-type=stablehlo | FileCheck %s
// RUN: not stepwell-opt %s --input-type=nn 2>&1 | FileCheck %s --check-prefix=NN
// RUN: stepwell compile %s -o %t.vmfb
// RUN: stepwell run %t.vmfb --input=2x3xf32=1 --input=3x4xf32=0.5 | FileCheck %s --check-prefix=EXEC
// RUN: not stepwell compile %S/Inputs/stablehlo-fft.mlir -o %t.fft.vmfb 2>&1 | FileCheck %s --check-prefix=FFT
// RUN: not ls %t.fft.vmfb

// CHECK-LABEL: module @jit_f
// CHECK-NOT:   sdy
// CHECK:       func.func public @main(%arg0: tensor<2x3xf32>, %arg1: tensor<3x4xf32>) -> (tensor<2x4xf32> {jax.result_info = "result"})
// CHECK:       stablehlo.dot_general %arg0, %arg1
// CHECK:       stablehlo.tanh
// NN: opt-stablehlo-input.mlir:23:10: error: --input-type=nn: the input holds StableHLO ('stablehlo.dot_general')
// EXEC: result[0]: 2x4xf32=[0.905148 0.905148 0.905148 0.905148][0.905148 0.905148 0.905148 0.905148]
// FFT: stablehlo-fft.mlir:{{[0-9]+}}:{{[0-9]+}}: error: 'stablehlo.fft' cannot be compiled by IREE: IREE lowers only power-of-two FFT lengths (this one is 5)

module @jit_f attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["x"=1]>
  func.func public @main(%arg0: tensor<2x3xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"x"}, {}]>}, %arg1: tensor<3x4xf32>) -> (tensor<2x4xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.dot_general %arg0, %arg1, contracting_dims = [1] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
    %1 = stablehlo.tanh %0 : tensor<2x4xf32>
    return %1 : tensor<2x4xf32>
  }
}
