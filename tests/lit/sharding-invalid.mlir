// RUN: stepwell-opt %s --split-input-file --verify-diagnostics

// Each malformed mesh or spec is reported at the value it sits on, naming the spec
// (in JAX's spelling), the dimension and the mesh.

module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 4>}} {
  // expected-error @+1 {{argument #0: spec P(None, 'model') splits dimension 1 (size 6) into 4 parts over model: 4 does not divide 6}}
  func.func @not_divisible(%x: tensor<8x6xf32> {nn.sharding = [unit, "model"]}) {
    return
  }
}

// -----

module attributes {nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 2>}} {
  func.func @unknown_axis(%x: tensor<8x8xf32>) -> tensor<8x8xf32> {
    // expected-error @+1 {{'nn.relu': spec P('modle', None) names axis 'modle', which mesh {data=2, model=2} does not have; did you mean 'model'?}}
    %0 = "nn.relu"(%x) {nn.sharding = ["modle", unit]} : (tensor<8x8xf32>) -> tensor<8x8xf32>
    return %0 : tensor<8x8xf32>
  }
}

// -----

module attributes {nn.mesh = {axes = ["data", "model"], shape = array<i64: 2, 2>}} {
  // expected-error @+1 {{result #0: spec P(('data', 'model'), 'data') uses mesh axis 'data' twice}}
  func.func @axis_twice(%x: tensor<8x8xf32>) -> (tensor<8x8xf32> {nn.sharding = [["data", "model"], "data"]}) {
    return %x : tensor<8x8xf32>
  }
}

// -----

module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
  func.func @wrong_rank(%x: tensor<8x8xf32>) -> tensor<8x8xf32> {
    // expected-error @+1 {{'nn.exp': spec P('model') has 1 entries for a value of rank 2}}
    %0 = "nn.exp"(%x) {nn.sharding = ["model"]} : (tensor<8x8xf32>) -> tensor<8x8xf32>
    return %0 : tensor<8x8xf32>
  }
}

// -----

module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
  func.func @bad_entry(%x: tensor<8x8xf32>) -> tensor<8x8xf32> {
    // expected-error @+1 {{'nn.exp': nn.sharding must be an array with one entry per dimension: "axis", ["axis", ...] or unit, found [1, unit]}}
    %0 = "nn.exp"(%x) {nn.sharding = [1, unit]} : (tensor<8x8xf32>) -> tensor<8x8xf32>
    return %0 : tensor<8x8xf32>
  }
}

// -----

// expected-error @+1 {{nn.mesh must be {axes = ["a", ...], shape = array<i64: n, ...>}, found {axes = ["model"]}}}
module attributes {nn.mesh = {axes = ["model"]}} {
  func.func @bad_mesh(%x: tensor<8x8xf32>) {
    return
  }
}

// -----

module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}} {
  func.func @bad_unreduced(%x: tensor<8x8xf32>) -> tensor<8x8xf32> {
    // expected-error @+1 {{'nn.exp' nn.unreduced names axis 'data', which mesh {model=2} does not have}}
    %0 = "nn.exp"(%x) {nn.sharding = [unit, unit], nn.unreduced = ["data"]} : (tensor<8x8xf32>) -> tensor<8x8xf32>
    return %0 : tensor<8x8xf32>
  }
}
