// Unmet expectations and unexpected diagnostics are both reported, located.
// RUN: not stepwell-opt %s --verify-diagnostics 2>&1 | FileCheck %s
// CHECK-DAG: opt-verify-diagnostics-mismatch.mlir:11:8: error: unexpected error: 'nn.add' expects 2 operands, found 1
// CHECK-DAG: opt-verify-diagnostics-mismatch.mlir:9:6: error: expected error "this is never reported" was not produced
// CHECK-DAG: opt-verify-diagnostics-mismatch.mlir:10:6: error: expected warning "wrong severity" was not produced

func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.relu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  // expected-error @-1 {{this is never reported}}
  // expected-warning @+1 {{wrong severity}}
  %1 = "nn.add"(%0) : (tensor<4xf32>) -> tensor<4xf32>
  return %1 : tensor<4xf32>
}
