// RUN: stepwell-opt %s -p nn-canonicalize | FileCheck %s

// A reshape to the same type is its operand.
// CHECK-LABEL: func.func @reshape_same
// CHECK-NEXT: return %arg0 : tensor<4x8xf32>
func.func @reshape_same(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.reshape"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// A reshape that changes the shape stays.
// CHECK-LABEL: func.func @reshape_other
// CHECK-NEXT: "nn.reshape"(%arg0) : (tensor<4x8xf32>) -> tensor<32xf32>
func.func @reshape_other(%x: tensor<4x8xf32>) -> tensor<32xf32> {
  %0 = "nn.reshape"(%x) : (tensor<4x8xf32>) -> tensor<32xf32>
  return %0 : tensor<32xf32>
}

// reshape(reshape(x)) is one reshape.
// CHECK-LABEL: func.func @reshape_reshape
// CHECK-NEXT: %[[R:.+]] = "nn.reshape"(%arg0) : (tensor<4x8xf32>) -> tensor<8x4xf32>
// CHECK-NEXT: return %[[R]] : tensor<8x4xf32>
func.func @reshape_reshape(%x: tensor<4x8xf32>) -> tensor<8x4xf32> {
  %0 = "nn.reshape"(%x) : (tensor<4x8xf32>) -> tensor<32xf32>
  %1 = "nn.reshape"(%0) : (tensor<32xf32>) -> tensor<8x4xf32>
  return %1 : tensor<8x4xf32>
}

// reshape(reshape(x)) back to x's type is x.
// CHECK-LABEL: func.func @reshape_round_trip
// CHECK-NEXT: return %arg0 : tensor<4x8xf32>
func.func @reshape_round_trip(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.reshape"(%x) : (tensor<4x8xf32>) -> tensor<32xf32>
  %1 = "nn.reshape"(%0) : (tensor<32xf32>) -> tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}

// The inner reshape stays while something else uses it.
// CHECK-LABEL: func.func @reshape_reshape_shared
// CHECK-NEXT: %[[A:.+]] = "nn.reshape"(%arg0) : (tensor<4x8xf32>) -> tensor<32xf32>
// CHECK-NEXT: %[[B:.+]] = "nn.reshape"(%arg0) : (tensor<4x8xf32>) -> tensor<8x4xf32>
// CHECK-NEXT: return %[[A]], %[[B]]
func.func @reshape_reshape_shared(%x: tensor<4x8xf32>) -> (tensor<32xf32>, tensor<8x4xf32>) {
  %0 = "nn.reshape"(%x) : (tensor<4x8xf32>) -> tensor<32xf32>
  %1 = "nn.reshape"(%0) : (tensor<32xf32>) -> tensor<8x4xf32>
  return %0, %1 : tensor<32xf32>, tensor<8x4xf32>
}

// The identity permutation is a no-op.
// CHECK-LABEL: func.func @transpose_identity
// CHECK-NEXT: return %arg0 : tensor<4x8xf32>
func.func @transpose_identity(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.transpose"(%x) {permutation = array<i64: 0, 1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// Same type, but the data moves: a square transpose stays.
// CHECK-LABEL: func.func @transpose_square
// CHECK-NEXT: "nn.transpose"(%arg0) {permutation = array<i64: 1, 0>}
func.func @transpose_square(%x: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %0 = "nn.transpose"(%x) {permutation = array<i64: 1, 0>} : (tensor<4x4xf32>) -> tensor<4x4xf32>
  return %0 : tensor<4x4xf32>
}

// transpose(transpose(x)) with inverse permutations is x.
// CHECK-LABEL: func.func @transpose_inverse
// CHECK-NOT: nn.transpose
// CHECK: return %arg0 : tensor<2x3x4xf32>
func.func @transpose_inverse(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %0 = "nn.transpose"(%x) {permutation = array<i64: 1, 2, 0>} : (tensor<2x3x4xf32>) -> tensor<3x4x2xf32>
  %1 = "nn.transpose"(%0) {permutation = array<i64: 2, 0, 1>} : (tensor<3x4x2xf32>) -> tensor<2x3x4xf32>
  return %1 : tensor<2x3x4xf32>
}

// Without `permutation` both reverse the axes: together the identity.
// CHECK-LABEL: func.func @transpose_default_twice
// CHECK-NEXT: return %arg0 : tensor<4x8xf32>
func.func @transpose_default_twice(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "nn.transpose"(%x) : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %1 = "nn.transpose"(%0) : (tensor<8x4xf32>) -> tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}

// Two transposes compose into one: result axis i is x axis p[q[i]].
// CHECK-LABEL: func.func @transpose_compose
// CHECK-NEXT: %[[T:.+]] = "nn.transpose"(%arg0) {permutation = array<i64: 1, 2, 0>} : (tensor<2x3x4xf32>) -> tensor<3x4x2xf32>
// CHECK-NEXT: return %[[T]]
func.func @transpose_compose(%x: tensor<2x3x4xf32>) -> tensor<3x4x2xf32> {
  %0 = "nn.transpose"(%x) {permutation = array<i64: 1, 0, 2>} : (tensor<2x3x4xf32>) -> tensor<3x2x4xf32>
  %1 = "nn.transpose"(%0) {permutation = array<i64: 0, 2, 1>} : (tensor<3x2x4xf32>) -> tensor<3x4x2xf32>
  return %1 : tensor<3x4x2xf32>
}

// A cast to the same element type is a no-op; a real cast stays.
// CHECK-LABEL: func.func @cast
// CHECK-NEXT: %[[C:.+]] = "nn.cast"(%arg0) : (tensor<4xf32>) -> tensor<4xf16>
// CHECK-NEXT: return %arg0, %[[C]]
func.func @cast(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf16>) {
  %0 = "nn.cast"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  %1 = "nn.cast"(%x) : (tensor<4xf32>) -> tensor<4xf16>
  return %0, %1 : tensor<4xf32>, tensor<4xf16>
}

// x * 1 and 1 * x are x.
// CHECK-LABEL: func.func @mul_one
// CHECK-NOT: nn.mul
// CHECK: return %arg0, %arg0 : tensor<4x8xf32>, tensor<4x8xf32>
func.func @mul_one(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %one = arith.constant dense<1.0> : tensor<4x8xf32>
  %0 = "nn.mul"(%x, %one) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "nn.mul"(%one, %x) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0, %1 : tensor<4x8xf32>, tensor<4x8xf32>
}

// A broadcasting splat one is folded too when the result keeps x's type.
// CHECK-LABEL: func.func @mul_one_scalar
// CHECK-NOT: nn.mul
// CHECK: return %arg0 : tensor<4x8xf32>
func.func @mul_one_scalar(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %one = arith.constant dense<1.0> : tensor<8xf32>
  %0 = "nn.mul"(%x, %one) : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// x * 1 that broadcasts x to a bigger shape is not a no-op.
// CHECK-LABEL: func.func @mul_one_broadcasts
// CHECK: "nn.mul"(%arg0, %{{.+}}) : (tensor<8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
func.func @mul_one_broadcasts(%x: tensor<8xf32>) -> tensor<4x8xf32> {
  %one = arith.constant dense<1.0> : tensor<4x8xf32>
  %0 = "nn.mul"(%x, %one) : (tensor<8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// x * 2 and x * [1, 2] are not x.
// CHECK-LABEL: func.func @mul_not_one
// CHECK-COUNT-2: "nn.mul"
func.func @mul_not_one(%x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>) {
  %two = arith.constant dense<2.0> : tensor<2xf32>
  %mixed = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %0 = "nn.mul"(%x, %two) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %1 = "nn.mul"(%x, %mixed) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  return %0, %1 : tensor<2xf32>, tensor<2xf32>
}

// x + 0 and 0 + x are x, for floats and integers.
// CHECK-LABEL: func.func @add_zero
// CHECK-NOT: nn.add
// CHECK: return %arg0, %arg0, %arg1 : tensor<4xf32>, tensor<4xf32>, tensor<4xi32>
func.func @add_zero(%x: tensor<4xf32>, %i: tensor<4xi32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xi32>) {
  %zero = arith.constant dense<0.0> : tensor<4xf32>
  %izero = arith.constant dense<0> : tensor<4xi32>
  %0 = "nn.add"(%x, %zero) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %1 = "nn.add"(%zero, %x) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %2 = "nn.add"(%i, %izero) : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
  return %0, %1, %2 : tensor<4xf32>, tensor<4xf32>, tensor<4xi32>
}

// x + 1 stays.
// CHECK-LABEL: func.func @add_one
// CHECK: "nn.add"
func.func @add_one(%x: tensor<4xf32>) -> tensor<4xf32> {
  %one = arith.constant dense<1.0> : tensor<4xf32>
  %0 = "nn.add"(%x, %one) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// nn ops are pure: an unused one is erased.
// CHECK-LABEL: func.func @dead
// CHECK-NEXT: return %arg0
func.func @dead(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "nn.relu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %x : tensor<4xf32>
}

// The rules compose: the pass docstring's example.
// CHECK-LABEL: func.func @chain
// CHECK-NEXT: return %arg0 : tensor<4x8xf32>
func.func @chain(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %one = arith.constant dense<1.0> : tensor<4x8xf32>
  %0 = "nn.transpose"(%x) {permutation = array<i64: 1, 0>} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %1 = "nn.transpose"(%0) {permutation = array<i64: 1, 0>} : (tensor<8x4xf32>) -> tensor<4x8xf32>
  %2 = "nn.mul"(%1, %one) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %2 : tensor<4x8xf32>
}
