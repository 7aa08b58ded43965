// RUN: stepwell-opt %s --split-input-file -p prim-simplify | FileCheck %s

// A transpose feeding contract's lhs folds into the spec.
// CHECK-LABEL: func.func @transpose_into_contract_lhs
// CHECK-NEXT: %[[C:.+]] = "prim.contract"(%arg0, %arg1) {spec = "km,kn->mn"} : (tensor<8x4xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: return %[[C]]
func.func @transpose_into_contract_lhs(%a: tensor<8x4xf32>, %b: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %t = "prim.transpose"(%a) {permutation = array<i64: 1, 0>} : (tensor<8x4xf32>) -> tensor<4x8xf32>
  %c = "prim.contract"(%t, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  return %c : tensor<4x16xf32>
}

// -----

// A transpose feeding contract's rhs folds into the spec (an accumulator type is kept).
// CHECK-LABEL: func.func @transpose_into_contract_rhs
// CHECK-NEXT: %[[C:.+]] = "prim.contract"(%arg0, %arg1) {spec = "bmk,bnk->bmn"} : (tensor<2x4x8xbf16>, tensor<2x16x8xbf16>) -> tensor<2x4x16xf32>
// CHECK-NEXT: return %[[C]]
func.func @transpose_into_contract_rhs(%a: tensor<2x4x8xbf16>, %b: tensor<2x16x8xbf16>) -> tensor<2x4x16xf32> {
  %t = "prim.transpose"(%b) {permutation = array<i64: 0, 2, 1>} : (tensor<2x16x8xbf16>) -> tensor<2x8x16xbf16>
  %c = "prim.contract"(%a, %t) {spec = "bmk,bkn->bmn"} : (tensor<2x4x8xbf16>, tensor<2x8x16xbf16>) -> tensor<2x4x16xf32>
  return %c : tensor<2x4x16xf32>
}

// -----

// Both operands' transposes fold; a transpose with another user stays for it.
// CHECK-LABEL: func.func @transpose_into_contract_both
// CHECK-NEXT: %[[T:.+]] = "prim.transpose"(%arg1)
// CHECK-NEXT: %[[C:.+]] = "prim.contract"(%arg0, %arg1) {spec = "kmb,bnk->bmn"} : (tensor<8x4x2xf32>, tensor<2x16x8xf32>) -> tensor<2x4x16xf32>
// CHECK-NEXT: return %[[C]], %[[T]]
func.func @transpose_into_contract_both(%a: tensor<8x4x2xf32>, %b: tensor<2x16x8xf32>) -> (tensor<2x4x16xf32>, tensor<2x8x16xf32>) {
  %ta = "prim.transpose"(%a) {permutation = array<i64: 2, 1, 0>} : (tensor<8x4x2xf32>) -> tensor<2x4x8xf32>
  %tb = "prim.transpose"(%b) {permutation = array<i64: 0, 2, 1>} : (tensor<2x16x8xf32>) -> tensor<2x8x16xf32>
  %c = "prim.contract"(%ta, %tb) {spec = "bmk,bkn->bmn"} : (tensor<2x4x8xf32>, tensor<2x8x16xf32>) -> tensor<2x4x16xf32>
  return %c, %tb : tensor<2x4x16xf32>, tensor<2x8x16xf32>
}

// -----

// A transpose of a single-use contract permutes its result letters.
// CHECK-LABEL: func.func @transpose_of_contract
// CHECK-NEXT: %[[C:.+]] = "prim.contract"(%arg0, %arg1) {spec = "bmk,bkn->bnm"} : (tensor<2x4x8xf32>, tensor<2x8x16xf32>) -> tensor<2x16x4xf32>
// CHECK-NEXT: return %[[C]]
func.func @transpose_of_contract(%a: tensor<2x4x8xf32>, %b: tensor<2x8x16xf32>) -> tensor<2x16x4xf32> {
  %c = "prim.contract"(%a, %b) {spec = "bmk,bkn->bmn"} : (tensor<2x4x8xf32>, tensor<2x8x16xf32>) -> tensor<2x4x16xf32>
  %t = "prim.transpose"(%c) {permutation = array<i64: 0, 2, 1>} : (tensor<2x4x16xf32>) -> tensor<2x16x4xf32>
  return %t : tensor<2x16x4xf32>
}

// -----

// A contract with another user stays, and so does the transpose of it.
// CHECK-LABEL: func.func @transpose_of_shared_contract
// CHECK-NEXT: %[[C:.+]] = "prim.contract"(%arg0, %arg1) {spec = "mk,kn->mn"}
// CHECK-NEXT: %[[T:.+]] = "prim.transpose"(%[[C]]) {permutation = array<i64: 1, 0>}
// CHECK-NEXT: return %[[T]], %[[C]]
func.func @transpose_of_shared_contract(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> (tensor<16x4xf32>, tensor<4x16xf32>) {
  %c = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  %t = "prim.transpose"(%c) {permutation = array<i64: 1, 0>} : (tensor<4x16xf32>) -> tensor<16x4xf32>
  return %t, %c : tensor<16x4xf32>, tensor<4x16xf32>
}

// -----

// transpose(transpose(x, p), q) is one transpose with permutation p[q[i]].
// CHECK-LABEL: func.func @transpose_chain
// CHECK-NEXT: %[[T:.+]] = "prim.transpose"(%arg0) {permutation = array<i64: 2, 1, 0>} : (tensor<2x3x4xf32>) -> tensor<4x3x2xf32>
// CHECK-NEXT: return %[[T]]
func.func @transpose_chain(%x: tensor<2x3x4xf32>) -> tensor<4x3x2xf32> {
  %0 = "prim.transpose"(%x) {permutation = array<i64: 1, 2, 0>} : (tensor<2x3x4xf32>) -> tensor<3x4x2xf32>
  %1 = "prim.transpose"(%0) {permutation = array<i64: 1, 0, 2>} : (tensor<3x4x2xf32>) -> tensor<4x3x2xf32>
  return %1 : tensor<4x3x2xf32>
}

// -----

// Two transposes that undo each other are nothing.
// CHECK-LABEL: func.func @transpose_chain_identity
// CHECK-NEXT: return %arg0 : tensor<2x3x4xf32>
func.func @transpose_chain_identity(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %0 = "prim.transpose"(%x) {permutation = array<i64: 1, 2, 0>} : (tensor<2x3x4xf32>) -> tensor<3x4x2xf32>
  %1 = "prim.transpose"(%0) {permutation = array<i64: 2, 0, 1>} : (tensor<3x4x2xf32>) -> tensor<2x3x4xf32>
  return %1 : tensor<2x3x4xf32>
}

// -----

// An identity transpose is its operand.
// CHECK-LABEL: func.func @identity_transpose
// CHECK-NEXT: return %arg0 : tensor<4x8xf32>
func.func @identity_transpose(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "prim.transpose"(%x) {permutation = array<i64: 0, 1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// A transpose of a square tensor keeps its type but still moves data: it stays.
// CHECK-LABEL: func.func @square_transpose_stays
// CHECK-NEXT: %[[T:.+]] = "prim.transpose"(%arg0) {permutation = array<i64: 1, 0>} : (tensor<4x4xf32>) -> tensor<4x4xf32>
// CHECK-NEXT: return %[[T]]
func.func @square_transpose_stays(%x: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %0 = "prim.transpose"(%x) {permutation = array<i64: 1, 0>} : (tensor<4x4xf32>) -> tensor<4x4xf32>
  return %0 : tensor<4x4xf32>
}

// -----

// Same-type reshape, cast, broadcast, full slice, reduce over no axes, one-operand
// concat and zero pad are their operand.
// CHECK-LABEL: func.func @identities
// CHECK-NEXT: return %arg0, %arg0, %arg0, %arg0, %arg0, %arg0, %arg0 : tensor<4x8xf32>
func.func @identities(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
  %0 = "prim.reshape"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "prim.cast"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %2 = "prim.broadcast"(%x) {dims = array<i64: 0, 1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %3 = "prim.slice"(%x) {start = array<i64: 0, 0>, limit = array<i64: 4, 8>, stride = array<i64: 1, 1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %4 = "prim.reduce"(%x) {kind = "sum", axes = array<i64>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %5 = "prim.concat"(%x) {axis = 1 : i64} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %6 = "prim.pad"(%x) {low = array<i64: 0, 0>, high = array<i64: 0, 0>, value = 1.0 : f32} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0, %1, %2, %3, %4, %5, %6 : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
}

// -----

// Ops that change the type stay: a real cast, a real slice, a real pad.
// CHECK-LABEL: func.func @non_identities_stay
// CHECK-NEXT: "prim.cast"(%arg0) : (tensor<4x8xf32>) -> tensor<4x8xf16>
// CHECK-NEXT: "prim.slice"(%arg0)
// CHECK-NEXT: "prim.pad"(%arg0)
// CHECK-NEXT: return
func.func @non_identities_stay(%x: tensor<4x8xf32>) -> (tensor<4x8xf16>, tensor<2x8xf32>, tensor<4x9xf32>) {
  %0 = "prim.cast"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf16>
  %1 = "prim.slice"(%x) {start = array<i64: 0, 0>, limit = array<i64: 4, 8>, stride = array<i64: 2, 1>} : (tensor<4x8xf32>) -> tensor<2x8xf32>
  %2 = "prim.pad"(%x) {low = array<i64: 0, 0>, high = array<i64: 0, 1>} : (tensor<4x8xf32>) -> tensor<4x9xf32>
  return %0, %1, %2 : tensor<4x8xf16>, tensor<2x8xf32>, tensor<4x9xf32>
}

// -----

// reshape(reshape(x)) is one reshape.
// CHECK-LABEL: func.func @reshape_chain
// CHECK-NEXT: %[[R:.+]] = "prim.reshape"(%arg0) : (tensor<4x8xf32>) -> tensor<2x16xf32>
// CHECK-NEXT: return %[[R]]
func.func @reshape_chain(%x: tensor<4x8xf32>) -> tensor<2x16xf32> {
  %0 = "prim.reshape"(%x) : (tensor<4x8xf32>) -> tensor<32xf32>
  %1 = "prim.reshape"(%0) : (tensor<32xf32>) -> tensor<2x16xf32>
  return %1 : tensor<2x16xf32>
}

// -----

// reshape(reshape(x)) back to x's type is x.
// CHECK-LABEL: func.func @reshape_chain_identity
// CHECK-NEXT: return %arg0 : tensor<4x8xf32>
func.func @reshape_chain_identity(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "prim.reshape"(%x) : (tensor<4x8xf32>) -> tensor<2x2x8xf32>
  %1 = "prim.reshape"(%0) : (tensor<2x2x8xf32>) -> tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}

// -----

// broadcast(broadcast(x)) is one broadcast with composed dims.
// CHECK-LABEL: func.func @broadcast_chain
// CHECK-NEXT: %[[B:.+]] = "prim.broadcast"(%arg0) {dims = array<i64: 1, 3>} : (tensor<4x8xf32>) -> tensor<2x4x3x8xf32>
// CHECK-NEXT: return %[[B]]
func.func @broadcast_chain(%x: tensor<4x8xf32>) -> tensor<2x4x3x8xf32> {
  %0 = "prim.broadcast"(%x) {dims = array<i64: 0, 2>} : (tensor<4x8xf32>) -> tensor<4x3x8xf32>
  %1 = "prim.broadcast"(%0) {dims = array<i64: 1, 2, 3>} : (tensor<4x3x8xf32>) -> tensor<2x4x3x8xf32>
  return %1 : tensor<2x4x3x8xf32>
}

// -----

// x + 0, 0 + x, x - 0, x * 1, 1 * x and x / 1 are x.
// CHECK-LABEL: func.func @map_identities
// CHECK-NOT: prim.map
// CHECK: return %arg0, %arg0, %arg0, %arg0, %arg0, %arg1 : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4xi32>
func.func @map_identities(%x: tensor<4x8xf32>, %i: tensor<4xi32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4xi32>) {
  %zero = arith.constant dense<0.0> : tensor<4x8xf32>
  %one = arith.constant dense<1.0> : tensor<4x8xf32>
  %ione = arith.constant dense<1> : tensor<4xi32>
  %0 = "prim.map"(%x, %zero) {fn = "add"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "prim.map"(%zero, %x) {fn = "add"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %2 = "prim.map"(%x, %zero) {fn = "sub"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %3 = "prim.map"(%x, %one) {fn = "mul"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %4 = "prim.map"(%one, %x) {fn = "div"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %5 = "prim.map"(%x, %one) {fn = "div"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %6 = "prim.map"(%ione, %i) {fn = "mul"} : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
  return %0, %1, %2, %3, %5, %6 : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4xi32>
}

// -----

// 0 - x, 1 / x, x * 2 and x + (a non-splat constant) are not identities.
// CHECK-LABEL: func.func @map_non_identities
// CHECK-COUNT-4: "prim.map"
// CHECK: return
func.func @map_non_identities(%x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) {
  %zero = arith.constant dense<0.0> : tensor<2xf32>
  %one = arith.constant dense<1.0> : tensor<2xf32>
  %two = arith.constant dense<2.0> : tensor<2xf32>
  %mixed = arith.constant dense<[0.0, 1.0]> : tensor<2xf32>
  %0 = "prim.map"(%zero, %x) {fn = "sub"} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %1 = "prim.map"(%one, %x) {fn = "div"} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %2 = "prim.map"(%x, %two) {fn = "mul"} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %3 = "prim.map"(%x, %mixed) {fn = "add"} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  return %0, %1, %2, %3 : tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>
}

// -----

// select with a splat condition picks a branch; select(c, x, x), max(x, x) and min(x, x) are x.
// CHECK-LABEL: func.func @trivial_selects
// CHECK-NOT: prim.map
// CHECK: return %arg1, %arg2, %arg1, %arg1, %arg1
func.func @trivial_selects(%c: tensor<4xi1>, %x: tensor<4xf32>, %y: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %t = arith.constant dense<true> : tensor<4xi1>
  %f = arith.constant dense<false> : tensor<4xi1>
  %0 = "prim.map"(%t, %x, %y) {fn = "select"} : (tensor<4xi1>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %1 = "prim.map"(%f, %x, %y) {fn = "select"} : (tensor<4xi1>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %2 = "prim.map"(%c, %x, %x) {fn = "select"} : (tensor<4xi1>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %3 = "prim.map"(%x, %x) {fn = "max"} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %4 = "prim.map"(%x, %x) {fn = "min"} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %0, %1, %2, %3, %4 : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

// -----

// A select with an unknown condition stays.
// CHECK-LABEL: func.func @select_stays
// CHECK-NEXT: "prim.map"(%arg0, %arg1, %arg2) {fn = "select"}
func.func @select_stays(%c: tensor<4xi1>, %x: tensor<4xf32>, %y: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "prim.map"(%c, %x, %y) {fn = "select"} : (tensor<4xi1>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// Small constants fold through contract and map.
// CHECK-LABEL: func.func @fold_small_constants
// CHECK-NEXT: %[[C:.+]] = arith.constant dense<{{\[}}[1.900000e+01, 2.200000e+01], [4.300000e+01, 5.000000e+01]]> : tensor<2x2xf32>
// CHECK-NEXT: return %[[C]]
func.func @fold_small_constants() -> tensor<2x2xf32> {
  %a = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %b = arith.constant dense<[[5.0, 6.0], [7.0, 8.0]]> : tensor<2x2xf32>
  %c = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %one = arith.constant dense<1.0> : tensor<2x2xf32>
  %d = "prim.map"(%c, %one) {fn = "add"} : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %e = "prim.map"(%d, %one) {fn = "sub"} : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  return %e : tensor<2x2xf32>
}

// -----

// A transpose and a comparison of small constants fold (i1 results too).
// CHECK-LABEL: func.func @fold_transpose_and_compare
// CHECK-DAG: arith.constant dense<{{\[}}[1, 4], [2, 5], [3, 6]]> : tensor<3x2xi32>
// CHECK-DAG: arith.constant dense<{{\[}}[false, true, true], [false, false, false]]> : tensor<2x3xi1>
// CHECK-NOT: prim.
func.func @fold_transpose_and_compare() -> (tensor<3x2xi32>, tensor<2x3xi1>) {
  %a = arith.constant dense<[[1, 2, 3], [4, 5, 6]]> : tensor<2x3xi32>
  %b = arith.constant dense<[[1, 1, 1], [9, 9, 9]]> : tensor<2x3xi32>
  %t = "prim.transpose"(%a) {permutation = array<i64: 1, 0>} : (tensor<2x3xi32>) -> tensor<3x2xi32>
  %l = "prim.map"(%b, %a) {fn = "lt"} : (tensor<2x3xi32>, tensor<2x3xi32>) -> tensor<2x3xi1>
  return %t, %l : tensor<3x2xi32>, tensor<2x3xi1>
}

// -----

// Splats of any size fold through elementwise and shape ops into splats.
// CHECK-LABEL: func.func @fold_large_splats
// CHECK-DAG: arith.constant dense<2.000000e+00> : tensor<64x64x64xf32>
// CHECK-DAG: arith.constant dense<-3> : tensor<256x256xi32>
// CHECK-DAG: arith.constant dense<1.000000e+00> : tensor<1024x32xbf16>
// CHECK-NOT: prim.
func.func @fold_large_splats() -> (tensor<64x64x64xf32>, tensor<256x256xi32>, tensor<1024x32xbf16>) {
  %a = arith.constant dense<1.0> : tensor<4096xf32>
  %b = "prim.map"(%a, %a) {fn = "add"} : (tensor<4096xf32>, tensor<4096xf32>) -> tensor<4096xf32>
  %c = "prim.broadcast"(%b) {dims = array<i64: 1>} : (tensor<4096xf32>) -> tensor<64x4096xf32>
  %d = "prim.reshape"(%c) : (tensor<64x4096xf32>) -> tensor<64x64x64xf32>
  %e = arith.constant dense<-3.7> : tensor<256x256xf32>
  %f = "prim.cast"(%e) : (tensor<256x256xf32>) -> tensor<256x256xi32>
  %g = arith.constant dense<0.0> : tensor<1024x32xbf16>
  %h = "prim.map"(%g) {fn = "exp"} : (tensor<1024x32xbf16>) -> tensor<1024x32xbf16>
  return %d, %f, %h : tensor<64x64x64xf32>, tensor<256x256xi32>, tensor<1024x32xbf16>
}

// -----

// An iota is never folded (cheaper to recompute in a fused loop than to load), nor
// is a comparison of iotas (a causal mask).
// CHECK-LABEL: func.func @iota_stays
// CHECK-NEXT: "prim.iota"
// CHECK-NEXT: "prim.iota"
// CHECK-NEXT: "prim.map"
// CHECK-NEXT: return
func.func @iota_stays() -> tensor<2x3xi1> {
  %0 = "prim.iota"() {dim = 0 : i64} : () -> tensor<2x3xi32>
  %1 = "prim.iota"() {dim = 1 : i64} : () -> tensor<2x3xi32>
  %2 = "prim.map"(%0, %1) {fn = "ge"} : (tensor<2x3xi32>, tensor<2x3xi32>) -> tensor<2x3xi1>
  return %2 : tensor<2x3xi1>
}

// -----

// Not folded: a non-splat constant over 64 elements, a reduce of a big splat (not
// elementwise), an iota and an op with a non-constant operand.
// CHECK-LABEL: func.func @no_fold
// CHECK: "prim.transpose"
// CHECK: "prim.reduce"
// CHECK: "prim.iota"
// CHECK: "prim.map"
// CHECK: return
func.func @no_fold(%x: tensor<2xf32>) -> (tensor<8x9xf32>, tensor<128xf32>, tensor<8x9xi32>, tensor<2xf32>) {
  %big = arith.constant dense<[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]> : tensor<9x8xf32>
  %0 = "prim.transpose"(%big) {permutation = array<i64: 1, 0>} : (tensor<9x8xf32>) -> tensor<8x9xf32>
  %s = arith.constant dense<1.0> : tensor<128x128xf32>
  %1 = "prim.reduce"(%s) {kind = "sum", axes = array<i64: 1>} : (tensor<128x128xf32>) -> tensor<128xf32>
  %2 = "prim.iota"() {dim = 0 : i64} : () -> tensor<8x9xi32>
  %two = arith.constant dense<2.0> : tensor<2xf32>
  %3 = "prim.map"(%x, %two) {fn = "mul"} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  return %0, %1, %2, %3 : tensor<8x9xf32>, tensor<128xf32>, tensor<8x9xi32>, tensor<2xf32>
}

// -----

// Unused prim ops are erased.
// CHECK-LABEL: func.func @dead
// CHECK-NEXT: return %arg0
func.func @dead(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "prim.map"(%x) {fn = "exp"} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "prim.transpose"(%0) {permutation = array<i64: 1, 0>} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  return %x : tensor<4x8xf32>
}
