// RUN: stepwell-opt %s --split-input-file -p 'nn-partition{expand=false}' | FileCheck %s --check-prefix=PROP
// RUN: stepwell-opt %s --split-input-file -p nn-partition | FileCheck %s --check-prefix=EXP

// Megatron MLP: w1 split by columns, w2 by rows. The hidden activation stays split,
// the second linear is a partial sum (nn.unreduced) summed by a reshard, and its
// bias is added once, after the sum. Arguments without a spec take their first
// user's layout (b1 by "model").
// PROP-LABEL: func.func @mlp(
// PROP-SAME: %arg2: tensor<16xf32> {nn.sharding = ["model"]}
// PROP: %[[H:.+]] = "nn.linear"(%arg0, %arg1, %arg2) {nn.sharding = [unit, "model"]}
// PROP: %[[G:.+]] = "nn.gelu"(%[[H]]) {nn.sharding = [unit, "model"]}
// PROP: %[[P:.+]] = "nn.linear"(%[[G]], %arg3) {nn.sharding = [unit, unit], nn.unreduced = ["model"]}
// PROP: %[[S:.+]] = "nn.reshard"(%[[P]]) {nn.sharding = [unit, unit]}
// PROP: %[[Y:.+]] = "nn.add"(%[[S]], %arg4) {nn.sharding = [unit, unit]}
// PROP: return %[[Y]]
// Expansion: one SPMD body at local shapes (16 / 2 = 8 columns), called once per
// device; the sum is symmetric (p0 + p1 on both devices).
// EXP: module attributes {nn.mesh = {{.*}}, nn.partitioned}
// EXP-LABEL: func.func private @mlp_spmd_0(
// EXP-SAME: tensor<4x8xf32>, %{{.*}}: tensor<8x8xf32>, %{{.*}}: tensor<8xf32>, %{{.*}}: tensor<8x8xf32>) -> tensor<4x8xf32>
// EXP: "nn.linear"({{.*}}) : (tensor<4x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
// EXP: "nn.gelu"
// EXP: "nn.linear"({{.*}}) : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
// EXP-LABEL: func.func @mlp(
// EXP-SAME: %arg0: tensor<4x8xf32> {iree.abi.affinity = #hal.device.promise<@d0>}, %arg1: tensor<4x8xf32> {iree.abi.affinity = #hal.device.promise<@d1>}
// EXP-SAME: iree.reflection = {stepwell.sharding =
// EXP: %[[P0:.+]] = call @mlp_spmd_0(%arg0, %arg2, %arg4, %arg6)
// EXP: %[[P1:.+]] = call @mlp_spmd_0(%arg1, %arg3, %arg5, %arg7)
// EXP: %[[T10:.+]] = flow.tensor.transfer %[[P1]] : tensor<4x8xf32> to #hal.device.promise<@d0>
// EXP: %[[S0:.+]] = arith.addf %[[P0]], %[[T10]]
// EXP: %[[T01:.+]] = flow.tensor.transfer %[[P0]] : tensor<4x8xf32> to #hal.device.promise<@d1>
// EXP: %[[S1:.+]] = arith.addf %[[T01]], %[[P1]]
// EXP: %[[Y0:.+]] = call @mlp_spmd_1(%[[S0]], %arg8)
// EXP: %[[Y1:.+]] = call @mlp_spmd_1(%[[S1]], %arg9)
// EXP: return %[[Y0]], %[[Y1]]
module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
  func.func @mlp(%x: tensor<4x8xf32>, %w1: tensor<8x16xf32> {nn.sharding = [unit, "model"]}, %b1: tensor<16xf32>,
                 %w2: tensor<16x8xf32> {nn.sharding = ["model", unit]}, %b2: tensor<8xf32>) -> tensor<4x8xf32> {
    %h = "nn.linear"(%x, %w1, %b1) : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
    %g = "nn.gelu"(%h) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %y = "nn.linear"(%g, %w2, %b2) : (tensor<4x16xf32>, tensor<16x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    return %y : tensor<4x8xf32>
  }
}

// -----

// Attention by heads: q, k, v projections split by columns become heads split over
// "model" through the reshape and transpose; attention runs on local heads; the
// output projection (split by rows) is summed.
// PROP-LABEL: func.func @attention(
// PROP: "nn.reshape"({{.*}}) {nn.sharding = [unit, unit, "model", unit]} : (tensor<1x8x16xf32>) -> tensor<1x8x4x4xf32>
// PROP: "nn.transpose"({{.*}}) {nn.sharding = [unit, "model", unit, unit], permutation = array<i64: 0, 2, 1, 3>}
// PROP: "nn.attention"({{.*}}) {causal = true, nn.sharding = [unit, "model", unit, unit]}
// PROP: "nn.linear"({{.*}}) {nn.sharding = [unit, unit, unit], nn.unreduced = ["model"]}
// PROP: "nn.reshard"
// PROP-NOT: "nn.reshard"
// EXP-LABEL: func.func private @attention_spmd_0(
// EXP: "nn.attention"({{.*}}) {causal = true} : (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
// EXP-LABEL: func.func @attention(
// EXP-COUNT-2: call @attention_spmd_0(
// EXP-COUNT-2: flow.tensor.transfer
module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
  func.func @attention(%x: tensor<1x8x16xf32>, %wq: tensor<16x16xf32> {nn.sharding = [unit, "model"]},
                       %wk: tensor<16x16xf32> {nn.sharding = [unit, "model"]}, %wv: tensor<16x16xf32> {nn.sharding = [unit, "model"]},
                       %wo: tensor<16x16xf32> {nn.sharding = ["model", unit]}) -> tensor<1x8x16xf32> {
    %q0 = "nn.linear"(%x, %wq) : (tensor<1x8x16xf32>, tensor<16x16xf32>) -> tensor<1x8x16xf32>
    %k0 = "nn.linear"(%x, %wk) : (tensor<1x8x16xf32>, tensor<16x16xf32>) -> tensor<1x8x16xf32>
    %v0 = "nn.linear"(%x, %wv) : (tensor<1x8x16xf32>, tensor<16x16xf32>) -> tensor<1x8x16xf32>
    %q1 = "nn.reshape"(%q0) : (tensor<1x8x16xf32>) -> tensor<1x8x4x4xf32>
    %k1 = "nn.reshape"(%k0) : (tensor<1x8x16xf32>) -> tensor<1x8x4x4xf32>
    %v1 = "nn.reshape"(%v0) : (tensor<1x8x16xf32>) -> tensor<1x8x4x4xf32>
    %q = "nn.transpose"(%q1) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<1x8x4x4xf32>) -> tensor<1x4x8x4xf32>
    %k = "nn.transpose"(%k1) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<1x8x4x4xf32>) -> tensor<1x4x8x4xf32>
    %v = "nn.transpose"(%v1) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<1x8x4x4xf32>) -> tensor<1x4x8x4xf32>
    %a = "nn.attention"(%q, %k, %v) {causal = true} : (tensor<1x4x8x4xf32>, tensor<1x4x8x4xf32>, tensor<1x4x8x4xf32>) -> tensor<1x4x8x4xf32>
    %a1 = "nn.transpose"(%a) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<1x4x8x4xf32>) -> tensor<1x8x4x4xf32>
    %a2 = "nn.reshape"(%a1) : (tensor<1x8x4x4xf32>) -> tensor<1x8x16xf32>
    %y = "nn.linear"(%a2, %wo) : (tensor<1x8x16xf32>, tensor<16x16xf32>) -> tensor<1x8x16xf32>
    return %y : tensor<1x8x16xf32>
  }
}

// -----

// Two shardings conflict: x is split by rows, y by columns. The add takes x's layout
// and y is moved there: gathered along its columns (transfers + concat), then sliced
// by rows.
// PROP-LABEL: func.func @conflict(
// PROP: %[[R:.+]] = "nn.reshard"(%arg1) {nn.sharding = ["model", unit]}
// PROP: "nn.add"(%arg0, %[[R]]) {nn.sharding = ["model", unit]}
// EXP-LABEL: func.func @conflict(
// EXP: %[[T:.+]] = flow.tensor.transfer %arg3 : tensor<4x2xf32> to #hal.device.promise<@d0>
// EXP: %[[C:.+]] = tensor.concat dim(1) %arg2, %[[T]] : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x4xf32>
// EXP: tensor.extract_slice %[[C]][0, 0] [2, 4] [1, 1] : tensor<4x4xf32> to tensor<2x4xf32>
// EXP: tensor.extract_slice %{{.*}}[2, 0] [2, 4] [1, 1] : tensor<4x4xf32> to tensor<2x4xf32>
module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
  func.func @conflict(%x: tensor<4x4xf32> {nn.sharding = ["model", unit]}, %y: tensor<4x4xf32> {nn.sharding = [unit, "model"]}) -> tensor<4x4xf32> {
    %0 = "nn.add"(%x, %y) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    return %0 : tensor<4x4xf32>
  }
}

// -----

// A norm over a split dimension: the dimension is gathered first; the result keeps
// the batch split of the 2-D mesh.
// PROP-LABEL: func.func @norm(
// PROP: %[[R:.+]] = "nn.reshard"(%arg0) {nn.sharding = ["data", unit]}
// PROP: "nn.layer_norm"(%[[R]], %arg1, %arg2) {nn.sharding = ["data", unit]}
module attributes {nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 2>}} {
  func.func @norm(%x: tensor<4x8xf32> {nn.sharding = ["data", "model"]}, %s: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
    %0 = "nn.layer_norm"(%x, %s, %b) : (tensor<4x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    return %0 : tensor<4x8xf32>
  }
}

// -----

// Embedding by vocabulary: each device looks up the ids in its rows (the first row it
// holds is an argument of the SPMD body, a constant per device) and the results are
// summed. Embedding by width needs no communication.
// PROP-LABEL: func.func @embed(
// PROP: %[[E:.+]] = "nn.embedding"(%arg0, %arg2) {nn.sharding = [unit, unit, unit], nn.unreduced = ["model"]}
// PROP: "nn.embedding"(%arg1, %arg2) {nn.sharding = [unit, unit, "model"]}
// PROP: "nn.reshard"(%[[E]]) {nn.sharding = [unit, unit, unit]}
// EXP-LABEL: func.func private @embed_spmd_0(
// EXP-SAME: tensor<8x4xf32>, %{{.*}}: tensor<1x3xi32>, %{{.*}}: tensor<16x2xf32>, %{{.*}}: tensor<i32>)
// EXP: "prim.map"({{.*}}) {fn = "select"}
// EXP-LABEL: func.func @embed(
// EXP: %[[C0:.+]] = arith.constant dense<0> : tensor<i32>
// EXP: call @embed_spmd_0(%arg0, %arg4, %arg2, %[[C0]])
// EXP: %[[C1:.+]] = arith.constant dense<8> : tensor<i32>
// EXP: call @embed_spmd_0(%arg1, %arg5, %arg3, %[[C1]])
// EXP: arith.addf
module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
  func.func @embed(%t: tensor<16x4xf32> {nn.sharding = ["model", unit]}, %u: tensor<16x4xf32> {nn.sharding = [unit, "model"]},
                   %ids: tensor<1x3xi32>) -> (tensor<1x3x4xf32>, tensor<1x3x4xf32>) {
    %0 = "nn.embedding"(%t, %ids) : (tensor<16x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
    %1 = "nn.embedding"(%u, %ids) : (tensor<16x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
    return %0, %1 : tensor<1x3x4xf32>, tensor<1x3x4xf32>
  }
}

// -----

// On a 2 x 2 mesh the sum over "model" stays within each "data" row: device 0 adds
// device 1's part, device 2 adds device 3's.
// EXP-LABEL: func.func @mesh2d(
// EXP: flow.tensor.transfer %{{.*}} : tensor<2x8xf32> to #hal.device.promise<@d0>
// EXP: flow.tensor.transfer %{{.*}} : tensor<2x8xf32> to #hal.device.promise<@d1>
// EXP: flow.tensor.transfer %{{.*}} : tensor<2x8xf32> to #hal.device.promise<@d2>
// EXP: flow.tensor.transfer %{{.*}} : tensor<2x8xf32> to #hal.device.promise<@d3>
// EXP-NOT: flow.tensor.transfer
module attributes {nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 2>}} {
  func.func @mesh2d(%x: tensor<4x16xf32> {nn.sharding = ["data", "model"]}, %w: tensor<16x8xf32> {nn.sharding = ["model", unit]}) -> tensor<4x8xf32> {
    %0 = "nn.linear"(%x, %w) : (tensor<4x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
    return %0 : tensor<4x8xf32>
  }
}

// -----

// A spec on an op (sw.shard) is a constraint: the op runs as its rule says, and a
// reshard after it gives its users the requested layout.
// PROP-LABEL: func.func @constraint(
// PROP: %[[R:.+]] = "nn.relu"(%arg0) {nn.sharding = [unit, unit]}
// PROP: %[[S:.+]] = "nn.reshard"(%[[R]]) {nn.sharding = ["model", unit]}
// PROP: "nn.exp"(%[[S]]) {nn.sharding = ["model", unit]}
module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
  func.func @constraint(%x: tensor<4x4xf32> {nn.sharding = [unit, unit]}) -> tensor<4x4xf32> {
    %0 = "nn.relu"(%x) {nn.sharding = ["model", unit]} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %1 = "nn.exp"(%0) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    return %1 : tensor<4x4xf32>
  }
}
