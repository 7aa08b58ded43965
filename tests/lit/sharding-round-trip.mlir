// RUN: stepwell-opt %s | stepwell-opt | FileCheck %s

// Meshes and partition specs are builtin attributes (docs/distributed.md): they survive
// parse -> verify -> print -> parse -> print. A spec entry is an axis name, an array of
// names (major to minor), or unit (replicated; [] is the same).

// CHECK: module attributes {nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 4>}}
// CHECK-LABEL: func.func @main(
// CHECK-SAME: %arg0: tensor<8x16xf32> {nn.sharding = ["data", unit]}
// CHECK-SAME: %arg1: tensor<16x64xf32> {nn.sharding = [unit, ["data", "model"]]}
// CHECK-SAME: -> (tensor<8x64xf32> {nn.sharding = [[], "model"]})
// CHECK: "nn.linear"(%arg0, %arg1) {nn.sharding = ["data", "model"]}
// CHECK: "nn.reshard"(%0) {nn.sharding = [unit, "model"]}
// CHECK: "nn.gelu"(%1) {nn.sharding = [unit, "model"], nn.unreduced = ["data"]}
module attributes {nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 4>}} {
  func.func @main(%x: tensor<8x16xf32> {nn.sharding = ["data", unit]}, %w: tensor<16x64xf32> {nn.sharding = [unit, ["data", "model"]]})
      -> (tensor<8x64xf32> {nn.sharding = [[], "model"]}) {
    %0 = "nn.linear"(%x, %w) {nn.sharding = ["data", "model"]} : (tensor<8x16xf32>, tensor<16x64xf32>) -> tensor<8x64xf32>
    %1 = "nn.reshard"(%0) {nn.sharding = [unit, "model"]} : (tensor<8x64xf32>) -> tensor<8x64xf32>
    %2 = "nn.gelu"(%1) {nn.sharding = [unit, "model"], nn.unreduced = ["data"]} : (tensor<8x64xf32>) -> tensor<8x64xf32>
    return %2 : tensor<8x64xf32>
  }
}
