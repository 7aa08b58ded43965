// Parser, verifier and pass errors can all be expected with comments.
// RUN: stepwell-opt %s --split-input-file --verify-diagnostics
// RUN: stepwell-opt %s --split-input-file --verify-diagnostics -p nn-canonicalize,canonicalize

func.func @contract(%a: tensor<4x8xf32>, %b: tensor<7x16xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{'nn.matmul' contracting dimensions differ}}
  %0 = "nn.matmul"(%a, %b) : (tensor<4x8xf32>, tensor<7x16xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @typo(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.rleu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  // expected-error @-1 {{did you mean 'nn.relu'?}}
  return %0 : tensor<4xf32>
}

// -----

func.func @two_in_one(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @below {{'nn.add' expects 2 operands, found 1}}
  %0 = "nn.add"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  %1 = "nn.relu"(%0) : (tensor<4xf32>) -> tensor<5xf32> // expected-error {{result #0 type mismatch: expected tensor<4xf32>, found tensor<5xf32>}}
  return %0 : tensor<4xf32>
}

// -----

func.func @parse(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{expected ')' to end operand list}}
  %0 = "nn.relu"(%x : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// A valid chunk expects nothing.
func.func @fine(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
