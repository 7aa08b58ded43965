// RUN: stepwell-opt %s --split-input-file -p stablehlo-to-nn | FileCheck %s
// RUN: stepwell-opt %s --split-input-file -p stablehlo-to-nn --stats -o %t 2>&1 | FileCheck %s --check-prefix=STATS

// Each input is StableHLO exactly as jax.jit(f).lower(...).as_text() printed it
// (jax 0.10, flax 0.12); the STATS lines are what --stats reports for it, in order.

// A dot_general in matmul form becomes nn.matmul.
// CHECK-LABEL: module @jit_matmul
// CHECK: %0 = "nn.matmul"(%arg0, %arg1) : (tensor<2x4x8xf32>, tensor<8x16xf32>) -> tensor<2x4x16xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 1 of 1 StableHLO ops (0 composites); left: none
module @jit_matmul attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x4x8xf32>, %arg1: tensor<8x16xf32>) -> (tensor<2x4x16xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.dot_general %arg0, %arg1, contracting_dims = [2] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<8x16xf32>) -> tensor<2x4x16xf32>
    return %0 : tensor<2x4x16xf32>
  }
}

// -----

// Batched matmul (batching dims lead) is nn.matmul too.
// CHECK-LABEL: module @jit_batch_matmul
// CHECK: "nn.matmul"(%arg0, %arg1) : (tensor<2x4x8xf32>, tensor<2x8x3xf32>) -> tensor<2x4x3xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 1 of 1 StableHLO ops (0 composites); left: none
module @jit_batch_matmul attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x4x8xf32>, %arg1: tensor<2x8x3xf32>) -> (tensor<2x4x3xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.dot_general %arg0, %arg1, batching_dims = [0] x [0], contracting_dims = [2] x [1], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<2x8x3xf32>) -> tensor<2x4x3xf32>
    return %0 : tensor<2x4x3xf32>
  }
}

// -----

// Any other dot_general is prim.contract with its einsum spec.
// CHECK-LABEL: module @jit_contract
// CHECK: "prim.contract"(%arg0, %arg1) {spec = "acb,adb->acd"} : (tensor<2x4x8xf32>, tensor<2x3x8xf32>) -> tensor<2x4x3xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 1 of 1 StableHLO ops (0 composites); left: none
module @jit_contract attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x4x8xf32>, %arg1: tensor<2x3x8xf32>) -> (tensor<2x4x3xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.dot_general %arg0, %arg1, batching_dims = [0] x [0], contracting_dims = [2] x [2], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<2x3x8xf32>) -> tensor<2x4x3xf32>
    return %0 : tensor<2x4x3xf32>
  }
}

// -----

// A DenseGeneral-style contraction is nn.matmul between reshapes.
// CHECK-LABEL: module @jit_dense_general
// CHECK: %[[W:.*]] = "prim.reshape"(%arg1) : (tensor<4x5x6xf32>) -> tensor<4x30xf32>
// CHECK: %[[Y:.*]] = "nn.matmul"(%arg0, %[[W]]) : (tensor<2x3x4xf32>, tensor<4x30xf32>) -> tensor<2x3x30xf32>
// CHECK: "prim.reshape"(%[[Y]]) : (tensor<2x3x30xf32>) -> tensor<2x3x5x6xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 1 of 1 StableHLO ops (0 composites); left: none
module @jit_dense_general attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x3x4xf32>, %arg1: tensor<4x5x6xf32>) -> (tensor<2x3x5x6xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.dot_general %arg0, %arg1, contracting_dims = [2] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x3x4xf32>, tensor<4x5x6xf32>) -> tensor<2x3x5x6xf32>
    return %0 : tensor<2x3x5x6xf32>
  }
}

// -----

// broadcast_in_dim: expanding size-1 dims are reshaped away; scalars splat-fold.
// CHECK-LABEL: module @jit_broadcast
// CHECK: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : tensor<4x8xf32>
// CHECK: %[[R:.*]] = "prim.reshape"(%arg0) : (tensor<4x1xf32>) -> tensor<4xf32>
// CHECK: %[[B:.*]] = "prim.broadcast"(%[[R]]) {dims = array<i64: 0>} : (tensor<4xf32>) -> tensor<4x8xf32>
// CHECK: %[[S:.*]] = "prim.map"(%[[B]], %arg1) {fn = "add"}
// CHECK: "prim.map"(%[[S]], %[[ONE]]) {fn = "add"}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 5 of 5 StableHLO ops (0 composites); left: none
module @jit_broadcast attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x1xf32>, %arg1: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.broadcast_in_dim %arg0, dims = [0, 1] : (tensor<4x1xf32>) -> tensor<4x8xf32>
    %1 = stablehlo.add %0, %arg1 : tensor<4x8xf32>
    %cst = stablehlo.constant dense<1.000000e+00> : tensor<f32>
    %2 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %3 = stablehlo.add %1, %2 : tensor<4x8xf32>
    return %3 : tensor<4x8xf32>
  }
}

// -----

// transpose and reshape.
// CHECK-LABEL: module @jit_transpose_reshape
// CHECK: %[[T:.*]] = "prim.transpose"(%arg0) {permutation = array<i64: 1, 0>}
// CHECK: "prim.reshape"(%[[T]]) : (tensor<8x4xf32>) -> tensor<2x16xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 2 of 2 StableHLO ops (0 composites); left: none
module @jit_transpose_reshape attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<2x16xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.transpose %arg0, dims = [1, 0] : (tensor<4x8xf32>) -> tensor<8x4xf32>
    %1 = stablehlo.reshape %0 : (tensor<8x4xf32>) -> tensor<2x16xf32>
    return %1 : tensor<2x16xf32>
  }
}

// -----

// reduce with an add/max/min/mul body and its identity init is prim.reduce.
// CHECK-LABEL: module @jit_reductions
// CHECK: "prim.reduce"(%arg0) {axes = array<i64: 0>, kind = "sum"} : (tensor<4x8xf32>) -> tensor<8xf32>
// CHECK: "prim.reduce"(%arg0) {axes = array<i64: 1>, kind = "max"}
// CHECK: "prim.reduce"(%arg0) {axes = array<i64: 0, 1>, kind = "min"} : (tensor<4x8xf32>) -> tensor<f32>
// CHECK: "prim.reduce"(%arg0) {axes = array<i64: 1>, kind = "prod"}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 8 of 8 StableHLO ops (0 composites); left: none
module @jit_reductions attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<8xf32> {jax.result_info = "result[0]"}, tensor<4xf32> {jax.result_info = "result[1]"}, tensor<f32> {jax.result_info = "result[2]"}, tensor<4xf32> {jax.result_info = "result[3]"}) {
    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %0 = stablehlo.reduce(%arg0 init: %cst) applies stablehlo.add across dimensions = [0] : (tensor<4x8xf32>, tensor<f32>) -> tensor<8xf32>
    %cst_0 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %1 = stablehlo.reduce(%arg0 init: %cst_0) applies stablehlo.maximum across dimensions = [1] : (tensor<4x8xf32>, tensor<f32>) -> tensor<4xf32>
    %cst_1 = stablehlo.constant dense<0x7F800000> : tensor<f32>
    %2 = stablehlo.reduce(%arg0 init: %cst_1) applies stablehlo.minimum across dimensions = [0, 1] : (tensor<4x8xf32>, tensor<f32>) -> tensor<f32>
    %cst_2 = stablehlo.constant dense<1.000000e+00> : tensor<f32>
    %3 = stablehlo.reduce(%arg0 init: %cst_2) applies stablehlo.multiply across dimensions = [1] : (tensor<4x8xf32>, tensor<f32>) -> tensor<4xf32>
    return %0, %1, %2, %3 : tensor<8xf32>, tensor<4xf32>, tensor<f32>, tensor<4xf32>
  }
}

// -----

// Elementwise math is prim.map.
// CHECK-LABEL: module @jit_elementwise
// CHECK-DAG: "prim.map"(%arg0) {fn = "tanh"}
// CHECK-DAG: "prim.map"(%arg1) {fn = "exp"}
// CHECK-DAG: {fn = "mul"}
// CHECK-DAG: {fn = "abs"}
// CHECK-DAG: {fn = "sqrt"}
// CHECK-DAG: {fn = "div"}
// CHECK-DAG: {fn = "sub"}
// CHECK-DAG: "prim.map"(%arg0, %arg1) {fn = "max"}
// CHECK-DAG: {fn = "log"}
// CHECK-DAG: {fn = "neg"}
// CHECK-DAG: "prim.map"(%arg1) {fn = "rsqrt"}
// CHECK-DAG: "prim.map"(%arg0, %arg1) {fn = "pow"}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 12 of 12 StableHLO ops (0 composites); left: none
module @jit_elementwise attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>, %arg1: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result[0]"}, tensor<4x8xf32> {jax.result_info = "result[1]"}, tensor<4x8xf32> {jax.result_info = "result[2]"}, tensor<4x8xf32> {jax.result_info = "result[3]"}, tensor<4x8xf32> {jax.result_info = "result[4]"}) {
    %0 = stablehlo.tanh %arg0 : tensor<4x8xf32>
    %1 = stablehlo.exponential %arg1 : tensor<4x8xf32>
    %2 = stablehlo.multiply %0, %1 : tensor<4x8xf32>
    %3 = stablehlo.abs %arg0 : tensor<4x8xf32>
    %4 = stablehlo.sqrt %3 : tensor<4x8xf32>
    %5 = stablehlo.divide %4, %arg1 : tensor<4x8xf32>
    %6 = stablehlo.subtract %2, %5 : tensor<4x8xf32>
    %7 = stablehlo.maximum %arg0, %arg1 : tensor<4x8xf32>
    %8 = stablehlo.log %arg0 : tensor<4x8xf32>
    %9 = stablehlo.negate %8 : tensor<4x8xf32>
    %10 = stablehlo.rsqrt %arg1 : tensor<4x8xf32>
    %11 = stablehlo.power %arg0, %arg1 : tensor<4x8xf32>
    return %6, %7, %9, %10, %11 : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
  }
}

// -----

// compare and select are prim.map eq/lt/.../select; convert is prim.cast.
// CHECK-LABEL: module @jit_compare_select
// CHECK: %[[LT:.*]] = "prim.map"(%arg0, %arg1) {fn = "lt"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xi1>
// CHECK: "prim.map"(%[[LT]], %arg0, %arg1) {fn = "select"}
// CHECK: %[[EQ:.*]] = "prim.map"(%arg0, %arg1) {fn = "eq"}
// CHECK: "prim.cast"(%[[EQ]]) : (tensor<4x8xi1>) -> tensor<4x8xi32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 4 of 4 StableHLO ops (0 composites); left: none
module @jit_compare_select attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>, %arg1: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result[0]"}, tensor<4x8xi32> {jax.result_info = "result[1]"}) {
    %0 = stablehlo.compare LT, %arg0, %arg1, FLOAT : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xi1>
    %1 = call @_where(%0, %arg0, %arg1) : (tensor<4x8xi1>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
    %2 = stablehlo.compare EQ, %arg0, %arg1, FLOAT : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xi1>
    %3 = stablehlo.convert %2 : (tensor<4x8xi1>) -> tensor<4x8xi32>
    return %1, %3 : tensor<4x8xf32>, tensor<4x8xi32>
  }
  func.func private @_where(%arg0: tensor<4x8xi1>, %arg1: tensor<4x8xf32>, %arg2: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %0 = stablehlo.select %arg0, %arg1, %arg2 : tensor<4x8xi1>, tensor<4x8xf32>
    return %0 : tensor<4x8xf32>
  }
}

// -----

// iota is prim.iota.
// CHECK-LABEL: module @jit_iota
// CHECK: %[[I:.*]] = "prim.iota"() {dim = 0 : i64} : () -> tensor<8xf32>
// CHECK: %[[B:.*]] = "prim.broadcast"(%[[I]]) {dims = array<i64: 1>} : (tensor<8xf32>) -> tensor<4x8xf32>
// CHECK: "prim.map"(%arg0, %[[B]]) {fn = "add"}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 4 of 4 StableHLO ops (0 composites); left: none
module @jit_iota attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.iota dim = 0 : tensor<8xf32>
    %1 = stablehlo.broadcast_in_dim %0, dims = [1] : (tensor<8xf32>) -> tensor<1x8xf32>
    %2 = stablehlo.broadcast_in_dim %1, dims = [0, 1] : (tensor<1x8xf32>) -> tensor<4x8xf32>
    %3 = stablehlo.add %arg0, %2 : tensor<4x8xf32>
    return %3 : tensor<4x8xf32>
  }
}

// -----

// concatenate, slice and constant pad.
// CHECK-LABEL: module @jit_concat_slice_pad
// CHECK: "prim.concat"(%arg0, %arg0) {axis = 1 : i64}
// CHECK: "prim.slice"(%arg0) {limit = array<i64: 3, 8>, start = array<i64: 1, 0>, stride = array<i64: 1, 2>}
// CHECK: "prim.pad"(%arg0) {high = array<i64: 2, 1>, low = array<i64: 1, 0>, value = 0.000000e+00 : f32}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 5 of 5 StableHLO ops (0 composites); left: none
module @jit_concat_slice_pad attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<4x16xf32> {jax.result_info = "result[0]"}, tensor<2x4xf32> {jax.result_info = "result[1]"}, tensor<7x9xf32> {jax.result_info = "result[2]"}) {
    %0 = stablehlo.concatenate %arg0, %arg0, dim = 1 : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x16xf32>
    %1 = stablehlo.slice %arg0 [1:3, 0:8:2] : (tensor<4x8xf32>) -> tensor<2x4xf32>
    %c = stablehlo.constant dense<0> : tensor<i32>
    %2 = call @_pad(%arg0, %c) : (tensor<4x8xf32>, tensor<i32>) -> tensor<7x9xf32>
    return %0, %1, %2 : tensor<4x16xf32>, tensor<2x4xf32>, tensor<7x9xf32>
  }
  func.func private @_pad(%arg0: tensor<4x8xf32>, %arg1: tensor<i32>) -> tensor<7x9xf32> {
    %0 = stablehlo.convert %arg1 : (tensor<i32>) -> tensor<f32>
    %1 = stablehlo.pad %arg0, %0, low = [1, 0], high = [2, 1], interior = [0, 0] : (tensor<4x8xf32>, tensor<f32>) -> tensor<7x9xf32>
    return %1 : tensor<7x9xf32>
  }
}

// -----

// clamp (jnp.clip) is max(min(x, hi), lo).
// CHECK-LABEL: module @jit_clip
// CHECK-DAG: %[[LO:.*]] = arith.constant dense<-1.000000e+00> : tensor<4x8xf32>
// CHECK-DAG: %[[HI:.*]] = arith.constant dense<1.000000e+00> : tensor<4x8xf32>
// CHECK: %[[M:.*]] = "prim.map"(%arg0, %[[HI]]) {fn = "min"}
// CHECK: "prim.map"(%[[M]], %[[LO]]) {fn = "max"}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 5 of 5 StableHLO ops (0 composites); left: none
module @jit_clip attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result"}) {
    %cst = stablehlo.constant dense<-1.000000e+00> : tensor<f32>
    %cst_0 = stablehlo.constant dense<1.000000e+00> : tensor<f32>
    %0 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %1 = stablehlo.broadcast_in_dim %cst_0, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %2 = stablehlo.clamp %0, %arg0, %1 : tensor<4x8xf32>
    return %2 : tensor<4x8xf32>
  }
}

// -----

// chlo.erf is prim.map erf.
// CHECK-LABEL: module @jit_erf
// CHECK: "prim.map"(%arg0) {fn = "erf"}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 1 of 1 StableHLO ops (0 composites); left: none
module @jit_erf attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result"}) {
    %0 = chlo.erf %arg0 : tensor<4x8xf32> -> tensor<4x8xf32>
    return %0 : tensor<4x8xf32>
  }
}

// -----

// A row gather (table[ids]) is nn.embedding.
// CHECK-LABEL: module @jit_embedding
// CHECK: %[[IDS:.*]] = "prim.map"({{.*}}) {fn = "select"}
// CHECK: "nn.embedding"(%arg0, %[[IDS]]) : (tensor<100x16xf32>, tensor<2x8xi32>) -> tensor<2x8x16xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 9 of 9 StableHLO ops (0 composites); left: none
module @jit_embedding attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<100x16xf32>, %arg1: tensor<2x8xi32>) -> (tensor<2x8x16xf32> {jax.result_info = "result"}) {
    %c = stablehlo.constant dense<0> : tensor<i32>
    %0 = stablehlo.broadcast_in_dim %c, dims = [] : (tensor<i32>) -> tensor<2x8xi32>
    %1 = stablehlo.compare LT, %arg1, %0, SIGNED : (tensor<2x8xi32>, tensor<2x8xi32>) -> tensor<2x8xi1>
    %c_0 = stablehlo.constant dense<100> : tensor<i32>
    %2 = stablehlo.broadcast_in_dim %c_0, dims = [] : (tensor<i32>) -> tensor<2x8xi32>
    %3 = stablehlo.add %arg1, %2 : tensor<2x8xi32>
    %4 = stablehlo.select %1, %3, %arg1 : tensor<2x8xi1>, tensor<2x8xi32>
    %5 = stablehlo.broadcast_in_dim %4, dims = [0, 1] : (tensor<2x8xi32>) -> tensor<2x8x1xi32>
    %6 = "stablehlo.gather"(%arg0, %5) <{dimension_numbers = #stablehlo.gather<offset_dims = [2], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 2>, indices_are_sorted = false, slice_sizes = array<i64: 1, 16>}> : (tensor<100x16xf32>, tensor<2x8x1xi32>) -> tensor<2x8x16xf32>
    return %6 : tensor<2x8x16xf32>
  }
}

// -----

// A gather along another axis is prim.gather.
// CHECK-LABEL: module @jit_gather_axis1
// CHECK: "prim.gather"(%arg0, %arg1) {axis = 1 : i64} : (tensor<16x100xf32>, tensor<2x8xi32>) -> tensor<16x2x8xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 2 of 2 StableHLO ops (0 composites); left: none
module @jit_gather_axis1 attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<16x100xf32>, %arg1: tensor<2x8xi32>) -> (tensor<16x2x8xf32> {jax.result_info = "result"}) {
    %0 = call @_take(%arg0, %arg1) : (tensor<16x100xf32>, tensor<2x8xi32>) -> tensor<16x2x8xf32>
    return %0 : tensor<16x2x8xf32>
  }
  func.func private @_take(%arg0: tensor<16x100xf32>, %arg1: tensor<2x8xi32>) -> tensor<16x2x8xf32> {
    %0 = stablehlo.broadcast_in_dim %arg1, dims = [0, 1] : (tensor<2x8xi32>) -> tensor<2x8x1xi32>
    %1 = "stablehlo.gather"(%arg0, %0) <{dimension_numbers = #stablehlo.gather<offset_dims = [0], collapsed_slice_dims = [1], start_index_map = [1], index_vector_dim = 2>, indices_are_sorted = false, slice_sizes = array<i64: 16, 1>}> : (tensor<16x100xf32>, tensor<2x8x1xi32>) -> tensor<16x2x8xf32>
    return %1 : tensor<16x2x8xf32>
  }
}

// -----

// An NHWC/HWIO convolution is nn.conv2d; Flax's bias add folds into it.
// CHECK-LABEL: module @jit_conv
// CHECK: "nn.conv2d"(%arg2, %arg1, %arg0) {dilation = array<i64: 1, 1>, groups = 1 : i64, padding = array<i64: 0, 1, 0, 1>, strides = array<i64: 2, 2>}
// CHECK-NOT: stablehlo.
// CHECK-NOT: prim.
// STATS: stablehlo-to-nn: raised 4 of 4 StableHLO ops (0 composites); left: none
module @jit_conv attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4xf32>, %arg1: tensor<3x3x3x4xf32>, %arg2: tensor<2x8x8x3xf32>) -> (tensor<2x4x4x4xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.convolution(%arg2, %arg1) dim_numbers = [b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f], window = {stride = [2, 2], pad = [[0, 1], [0, 1]], lhs_dilate = [1, 1], rhs_dilate = [1, 1], reverse = [false, false]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<2x8x8x3xf32>, tensor<3x3x3x4xf32>) -> tensor<2x4x4x4xf32>
    %1 = stablehlo.reshape %arg0 : (tensor<4xf32>) -> tensor<1x1x1x4xf32>
    %2 = stablehlo.broadcast_in_dim %1, dims = [0, 1, 2, 3] : (tensor<1x1x1x4xf32>) -> tensor<2x4x4x4xf32>
    %3 = stablehlo.add %0, %2 : tensor<2x4x4x4xf32>
    return %3 : tensor<2x4x4x4xf32>
  }
}

// -----

// Other convolution layouts get transposes around nn.conv2d.
// CHECK-LABEL: module @jit_conv_nchw
// CHECK: %[[X:.*]] = "prim.transpose"(%arg0) {permutation = array<i64: 0, 2, 3, 1>}
// CHECK: %[[W:.*]] = "prim.transpose"(%arg1) {permutation = array<i64: 2, 3, 1, 0>}
// CHECK: %[[Y:.*]] = "nn.conv2d"(%[[X]], %[[W]]) {{.*}}padding = array<i64: 1, 1, 1, 1>
// CHECK: "prim.transpose"(%[[Y]]) {permutation = array<i64: 0, 3, 1, 2>}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 1 of 1 StableHLO ops (0 composites); left: none
module @jit_conv_nchw attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x3x8x8xf32>, %arg1: tensor<4x3x3x3xf32>) -> (tensor<2x4x8x8xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.convolution(%arg0, %arg1) dim_numbers = [b, f, 0, 1]x[o, i, 0, 1]->[b, f, 0, 1], window = {stride = [1, 1], pad = [[1, 1], [1, 1]], lhs_dilate = [1, 1], rhs_dilate = [1, 1], reverse = [false, false]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<2x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<2x4x8x8xf32>
    return %0 : tensor<2x4x8x8xf32>
  }
}

// -----

// Ops without a rule stay StableHLO: sort, argmax's two-operand reduce, log_plus_one.
// CHECK-LABEL: module @jit_unraised
// CHECK: "stablehlo.sort"(%arg0)
// CHECK: stablehlo.compare LT, {{.*}} TOTALORDER
// CHECK: stablehlo.return
// CHECK: %[[I:.*]] = "prim.iota"() {dim = 1 : i64} : () -> tensor<4x8xi32>
// CHECK: stablehlo.reduce(%arg0 init: {{.*}}), (%[[I]] init: {{.*}}) across dimensions = [1]
// CHECK: stablehlo.select
// CHECK: stablehlo.log_plus_one %arg0
// STATS: stablehlo-to-nn: raised 5 of 8 StableHLO ops (0 composites); left: stablehlo.log_plus_one x1, stablehlo.reduce x1, stablehlo.sort x1
module @jit_unraised attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result[0]"}, tensor<4xi32> {jax.result_info = "result[1]"}, tensor<4x8xf32> {jax.result_info = "result[2]"}) {
    %0 = call @sort(%arg0) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %1 = call @argmax(%arg0) : (tensor<4x8xf32>) -> tensor<4xi32>
    %2 = stablehlo.log_plus_one %arg0 : tensor<4x8xf32>
    return %0, %1, %2 : tensor<4x8xf32>, tensor<4xi32>, tensor<4x8xf32>
  }
  func.func private @sort(%arg0: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %0 = "stablehlo.sort"(%arg0) <{dimension = 1 : i64, is_stable = true}> ({
    ^bb0(%arg1: tensor<f32>, %arg2: tensor<f32>):
      %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
      %1 = stablehlo.compare EQ, %arg1, %cst, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      %cst_0 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
      %2 = stablehlo.select %1, %cst_0, %arg1 : tensor<i1>, tensor<f32>
      %3 = stablehlo.compare NE, %arg1, %arg1, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      %cst_1 = stablehlo.constant dense<0x7FC00000> : tensor<f32>
      %4 = stablehlo.select %3, %cst_1, %2 : tensor<i1>, tensor<f32>
      %cst_2 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
      %5 = stablehlo.compare EQ, %arg2, %cst_2, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      %cst_3 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
      %6 = stablehlo.select %5, %cst_3, %arg2 : tensor<i1>, tensor<f32>
      %7 = stablehlo.compare NE, %arg2, %arg2, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      %cst_4 = stablehlo.constant dense<0x7FC00000> : tensor<f32>
      %8 = stablehlo.select %7, %cst_4, %6 : tensor<i1>, tensor<f32>
      %9 = stablehlo.compare LT, %4, %8, TOTALORDER : (tensor<f32>, tensor<f32>) -> tensor<i1>
      stablehlo.return %9 : tensor<i1>
    }) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    return %0 : tensor<4x8xf32>
  }
  func.func private @argmax(%arg0: tensor<4x8xf32>) -> tensor<4xi32> {
    %0 = stablehlo.iota dim = 1 : tensor<4x8xi32>
    %cst = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %c = stablehlo.constant dense<0> : tensor<i32>
    %1:2 = stablehlo.reduce(%arg0 init: %cst), (%0 init: %c) across dimensions = [1] : (tensor<4x8xf32>, tensor<4x8xi32>, tensor<f32>, tensor<i32>) -> (tensor<4xf32>, tensor<4xi32>)
     reducer(%arg1: tensor<f32>, %arg3: tensor<f32>) (%arg2: tensor<i32>, %arg4: tensor<i32>)  {
      %2 = stablehlo.compare GT, %arg1, %arg3, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      %3 = stablehlo.compare NE, %arg1, %arg1, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      %4 = stablehlo.or %2, %3 : tensor<i1>
      %5 = stablehlo.compare EQ, %arg1, %arg3, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      %6 = stablehlo.compare LT, %arg2, %arg4, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
      %7 = stablehlo.and %5, %6 : tensor<i1>
      %8 = stablehlo.or %4, %7 : tensor<i1>
      %9 = stablehlo.select %4, %arg1, %arg3 : tensor<i1>, tensor<f32>
      %10 = stablehlo.select %8, %arg2, %arg4 : tensor<i1>, tensor<i32>
      stablehlo.return %9, %10 : tensor<f32>, tensor<i32>
    }
    return %1#1 : tensor<4xi32>
  }
}

// -----

// jax.nn.softmax is nn.softmax.
// CHECK-LABEL: module @jit_softmax
// CHECK: %0 = "nn.softmax"(%arg0) {axis = 1 : i64} : (tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
// CHECK-NEXT: return %0
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 14 of 14 StableHLO ops (1 composites: nn.softmax x1); left: none
module @jit_softmax attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x4x8xf32>) -> (tensor<2x4x8xf32> {jax.result_info = "result"}) {
    %cst = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %0 = stablehlo.reduce(%arg0 init: %cst) applies stablehlo.maximum across dimensions = [1] : (tensor<2x4x8xf32>, tensor<f32>) -> tensor<2x8xf32>
    %cst_0 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %1 = stablehlo.broadcast_in_dim %cst_0, dims = [] : (tensor<f32>) -> tensor<2x8xf32>
    %2 = stablehlo.maximum %1, %0 : tensor<2x8xf32>
    %3 = stablehlo.broadcast_in_dim %2, dims = [0, 2] : (tensor<2x8xf32>) -> tensor<2x1x8xf32>
    %4 = stablehlo.broadcast_in_dim %3, dims = [0, 1, 2] : (tensor<2x1x8xf32>) -> tensor<2x4x8xf32>
    %5 = stablehlo.subtract %arg0, %4 : tensor<2x4x8xf32>
    %6 = stablehlo.exponential %5 : tensor<2x4x8xf32>
    %cst_1 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %7 = stablehlo.reduce(%6 init: %cst_1) applies stablehlo.add across dimensions = [1] : (tensor<2x4x8xf32>, tensor<f32>) -> tensor<2x8xf32>
    %8 = stablehlo.broadcast_in_dim %7, dims = [0, 2] : (tensor<2x8xf32>) -> tensor<2x1x8xf32>
    %9 = stablehlo.broadcast_in_dim %8, dims = [0, 1, 2] : (tensor<2x1x8xf32>) -> tensor<2x4x8xf32>
    %10 = stablehlo.divide %6, %9 : tensor<2x4x8xf32>
    return %10 : tensor<2x4x8xf32>
  }
}

// -----

// flax.linen.LayerNorm is nn.layer_norm.
// CHECK-LABEL: module @jit_layer_norm
// CHECK: %0 = "nn.layer_norm"(%arg2, %arg1, %arg0) {axis = 2 : i64, epsilon = 9.99999997E-7 : f32}
// CHECK-NEXT: return %0
// STATS: stablehlo-to-nn: raised 32 of 32 StableHLO ops (1 composites: nn.layer_norm x1); left: none
module @jit_layer_norm attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<16xf32>, %arg1: tensor<16xf32>, %arg2: tensor<2x8x16xf32>) -> (tensor<2x8x16xf32> {jax.result_info = "result"}) {
    %0 = chlo.square %arg2 : tensor<2x8x16xf32> -> tensor<2x8x16xf32>
    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %1 = stablehlo.reduce(%arg2 init: %cst) applies stablehlo.add across dimensions = [2] : (tensor<2x8x16xf32>, tensor<f32>) -> tensor<2x8xf32>
    %cst_0 = stablehlo.constant dense<1.600000e+01> : tensor<f32>
    %2 = stablehlo.broadcast_in_dim %cst_0, dims = [] : (tensor<f32>) -> tensor<2x8xf32>
    %3 = stablehlo.divide %1, %2 : tensor<2x8xf32>
    %cst_1 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %4 = stablehlo.reduce(%0 init: %cst_1) applies stablehlo.add across dimensions = [2] : (tensor<2x8x16xf32>, tensor<f32>) -> tensor<2x8xf32>
    %cst_2 = stablehlo.constant dense<1.600000e+01> : tensor<f32>
    %5 = stablehlo.broadcast_in_dim %cst_2, dims = [] : (tensor<f32>) -> tensor<2x8xf32>
    %6 = stablehlo.divide %4, %5 : tensor<2x8xf32>
    %7 = chlo.square %3 : tensor<2x8xf32> -> tensor<2x8xf32>
    %8 = stablehlo.subtract %6, %7 : tensor<2x8xf32>
    %cst_3 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %9 = stablehlo.broadcast_in_dim %cst_3, dims = [] : (tensor<f32>) -> tensor<2x8xf32>
    %10 = stablehlo.maximum %9, %8 : tensor<2x8xf32>
    %11 = stablehlo.broadcast_in_dim %3, dims = [0, 1] : (tensor<2x8xf32>) -> tensor<2x8x1xf32>
    %12 = stablehlo.broadcast_in_dim %10, dims = [0, 1] : (tensor<2x8xf32>) -> tensor<2x8x1xf32>
    %13 = stablehlo.broadcast_in_dim %11, dims = [0, 1, 2] : (tensor<2x8x1xf32>) -> tensor<2x8x16xf32>
    %14 = stablehlo.subtract %arg2, %13 : tensor<2x8x16xf32>
    %cst_4 = stablehlo.constant dense<9.99999997E-7> : tensor<f32>
    %15 = stablehlo.broadcast_in_dim %cst_4, dims = [] : (tensor<f32>) -> tensor<2x8x1xf32>
    %16 = stablehlo.add %12, %15 : tensor<2x8x1xf32>
    %17 = stablehlo.rsqrt %16 : tensor<2x8x1xf32>
    %18 = stablehlo.reshape %arg1 : (tensor<16xf32>) -> tensor<1x1x16xf32>
    %19 = stablehlo.broadcast_in_dim %17, dims = [0, 1, 2] : (tensor<2x8x1xf32>) -> tensor<2x8x16xf32>
    %20 = stablehlo.broadcast_in_dim %18, dims = [0, 1, 2] : (tensor<1x1x16xf32>) -> tensor<2x8x16xf32>
    %21 = stablehlo.multiply %19, %20 : tensor<2x8x16xf32>
    %22 = stablehlo.multiply %14, %21 : tensor<2x8x16xf32>
    %23 = stablehlo.reshape %arg0 : (tensor<16xf32>) -> tensor<1x1x16xf32>
    %24 = stablehlo.broadcast_in_dim %23, dims = [0, 1, 2] : (tensor<1x1x16xf32>) -> tensor<2x8x16xf32>
    %25 = stablehlo.add %22, %24 : tensor<2x8x16xf32>
    return %25 : tensor<2x8x16xf32>
  }
}

// -----

// flax.linen.RMSNorm is nn.rms_norm.
// CHECK-LABEL: module @jit_rms_norm
// CHECK: %0 = "nn.rms_norm"(%arg1, %arg0) {epsilon = 9.99999997E-7 : f32}
// CHECK-NEXT: return %0
// STATS: stablehlo-to-nn: raised 21 of 21 StableHLO ops (1 composites: nn.rms_norm x1); left: none
module @jit_rms_norm attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<16xf32>, %arg1: tensor<2x8x16xf32>) -> (tensor<2x8x16xf32> {jax.result_info = "result"}) {
    %0 = chlo.square %arg1 : tensor<2x8x16xf32> -> tensor<2x8x16xf32>
    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %1 = stablehlo.reduce(%0 init: %cst) applies stablehlo.add across dimensions = [2] : (tensor<2x8x16xf32>, tensor<f32>) -> tensor<2x8xf32>
    %cst_0 = stablehlo.constant dense<1.600000e+01> : tensor<f32>
    %2 = stablehlo.broadcast_in_dim %cst_0, dims = [] : (tensor<f32>) -> tensor<2x8xf32>
    %3 = stablehlo.divide %1, %2 : tensor<2x8xf32>
    %cst_1 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %4 = stablehlo.broadcast_in_dim %cst_1, dims = [] : (tensor<f32>) -> tensor<2x8xf32>
    %5 = stablehlo.broadcast_in_dim %4, dims = [0, 1] : (tensor<2x8xf32>) -> tensor<2x8x1xf32>
    %6 = stablehlo.broadcast_in_dim %3, dims = [0, 1] : (tensor<2x8xf32>) -> tensor<2x8x1xf32>
    %7 = stablehlo.broadcast_in_dim %5, dims = [0, 1, 2] : (tensor<2x8x1xf32>) -> tensor<2x8x16xf32>
    %8 = stablehlo.subtract %arg1, %7 : tensor<2x8x16xf32>
    %cst_2 = stablehlo.constant dense<9.99999997E-7> : tensor<f32>
    %9 = stablehlo.broadcast_in_dim %cst_2, dims = [] : (tensor<f32>) -> tensor<2x8x1xf32>
    %10 = stablehlo.add %6, %9 : tensor<2x8x1xf32>
    %11 = stablehlo.rsqrt %10 : tensor<2x8x1xf32>
    %12 = stablehlo.reshape %arg0 : (tensor<16xf32>) -> tensor<1x1x16xf32>
    %13 = stablehlo.broadcast_in_dim %11, dims = [0, 1, 2] : (tensor<2x8x1xf32>) -> tensor<2x8x16xf32>
    %14 = stablehlo.broadcast_in_dim %12, dims = [0, 1, 2] : (tensor<1x1x16xf32>) -> tensor<2x8x16xf32>
    %15 = stablehlo.multiply %13, %14 : tensor<2x8x16xf32>
    %16 = stablehlo.multiply %8, %15 : tensor<2x8x16xf32>
    return %16 : tensor<2x8x16xf32>
  }
}

// -----

// jax.nn.gelu (tanh form) is nn.gelu {approximate = true}.
// CHECK-LABEL: module @jit_gelu_tanh
// CHECK: %0 = "nn.gelu"(%arg0) {approximate = true}
// CHECK-NEXT: return %0
// STATS: stablehlo-to-nn: raised 17 of 17 StableHLO ops (1 composites: nn.gelu x1); left: none
module @jit_gelu_tanh attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.multiply %arg0, %arg0 : tensor<4x8xf32>
    %1 = stablehlo.multiply %0, %arg0 : tensor<4x8xf32>
    %cst = stablehlo.constant dense<4.471500e-02> : tensor<f32>
    %2 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %3 = stablehlo.multiply %2, %1 : tensor<4x8xf32>
    %4 = stablehlo.add %arg0, %3 : tensor<4x8xf32>
    %cst_0 = stablehlo.constant dense<0.797884583> : tensor<f32>
    %5 = stablehlo.broadcast_in_dim %cst_0, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %6 = stablehlo.multiply %5, %4 : tensor<4x8xf32>
    %7 = stablehlo.tanh %6 : tensor<4x8xf32>
    %cst_1 = stablehlo.constant dense<1.000000e+00> : tensor<f32>
    %8 = stablehlo.broadcast_in_dim %cst_1, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %9 = stablehlo.add %8, %7 : tensor<4x8xf32>
    %cst_2 = stablehlo.constant dense<5.000000e-01> : tensor<f32>
    %10 = stablehlo.broadcast_in_dim %cst_2, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %11 = stablehlo.multiply %10, %9 : tensor<4x8xf32>
    %12 = stablehlo.multiply %arg0, %11 : tensor<4x8xf32>
    return %12 : tensor<4x8xf32>
  }
}

// -----

// jax.nn.gelu(approximate=False) (erfc form) is nn.gelu {approximate = false}.
// CHECK-LABEL: module @jit_gelu_erf
// CHECK: %0 = "nn.gelu"(%arg0) {approximate = false}
// CHECK-NEXT: return %0
// STATS: stablehlo-to-nn: raised 9 of 9 StableHLO ops (1 composites: nn.gelu x1); left: none
module @jit_gelu_erf attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result"}) {
    %cst = stablehlo.constant dense<5.000000e-01> : tensor<f32>
    %0 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %1 = stablehlo.multiply %0, %arg0 : tensor<4x8xf32>
    %2 = stablehlo.negate %arg0 : tensor<4x8xf32>
    %cst_0 = stablehlo.constant dense<0.707106769> : tensor<f32>
    %3 = stablehlo.broadcast_in_dim %cst_0, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %4 = stablehlo.multiply %2, %3 : tensor<4x8xf32>
    %5 = chlo.erfc %4 : tensor<4x8xf32> -> tensor<4x8xf32>
    %6 = stablehlo.multiply %1, %5 : tensor<4x8xf32>
    return %6 : tensor<4x8xf32>
  }
}

// -----

// jax.nn.silu is nn.silu; jax.nn.sigmoid is nn.sigmoid; relu is nn.relu.
// CHECK-LABEL: module @jit_activations
// CHECK: %0 = "nn.silu"(%arg0)
// CHECK-NEXT: %1 = "nn.sigmoid"(%arg0)
// CHECK-NEXT: %2 = "nn.relu"(%arg0)
// CHECK-NEXT: return %0, %1, %2
// STATS: stablehlo-to-nn: raised 17 of 17 StableHLO ops (3 composites: nn.silu x1, nn.sigmoid x1, nn.relu x1); left: none
module @jit_activations attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<4x8xf32>) -> (tensor<4x8xf32> {jax.result_info = "result[0]"}, tensor<4x8xf32> {jax.result_info = "result[1]"}, tensor<4x8xf32> {jax.result_info = "result[2]"}) {
    %0 = call @silu(%arg0) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %1 = stablehlo.negate %arg0 : tensor<4x8xf32>
    %2 = stablehlo.exponential %1 : tensor<4x8xf32>
    %cst = stablehlo.constant dense<1.000000e+00> : tensor<f32>
    %3 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %4 = stablehlo.add %3, %2 : tensor<4x8xf32>
    %cst_0 = stablehlo.constant dense<1.000000e+00> : tensor<f32>
    %5 = stablehlo.broadcast_in_dim %cst_0, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %6 = stablehlo.divide %5, %4 : tensor<4x8xf32>
    %7 = call @relu(%arg0) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    return %0, %6, %7 : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
  }
  func.func private @silu(%arg0: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %0 = stablehlo.negate %arg0 : tensor<4x8xf32>
    %1 = stablehlo.exponential %0 : tensor<4x8xf32>
    %cst = stablehlo.constant dense<1.000000e+00> : tensor<f32>
    %2 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %3 = stablehlo.add %2, %1 : tensor<4x8xf32>
    %cst_0 = stablehlo.constant dense<1.000000e+00> : tensor<f32>
    %4 = stablehlo.broadcast_in_dim %cst_0, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %5 = stablehlo.divide %4, %3 : tensor<4x8xf32>
    %6 = stablehlo.multiply %arg0, %5 : tensor<4x8xf32>
    return %6 : tensor<4x8xf32>
  }
  func.func private @relu(%arg0: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %0 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<4x8xf32>
    %1 = stablehlo.maximum %arg0, %0 : tensor<4x8xf32>
    return %1 : tensor<4x8xf32>
  }
}

// -----

// jax.nn.dot_product_attention ([batch, seq, heads, dim]) is nn.attention between transposes.
// CHECK-LABEL: module @jit_dpa
// CHECK: %[[Q:.*]] = "prim.transpose"(%arg0) {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x8x4x16xf32>) -> tensor<2x4x8x16xf32>
// CHECK: %[[K:.*]] = "prim.transpose"(%arg1) {permutation = array<i64: 0, 2, 1, 3>}
// CHECK: %[[V:.*]] = "prim.transpose"(%arg2) {permutation = array<i64: 0, 2, 1, 3>}
// CHECK: %[[A:.*]] = "nn.attention"(%[[Q]], %[[K]], %[[V]]) : (tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>) -> tensor<2x4x8x16xf32>
// CHECK: %[[O:.*]] = "prim.transpose"(%[[A]]) {permutation = array<i64: 0, 2, 1, 3>}
// CHECK-NEXT: return %[[O]]
// STATS: stablehlo-to-nn: raised 25 of 25 StableHLO ops (1 composites: nn.attention x1); left: none
module @jit_dpa attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x8x4x16xf32>, %arg1: tensor<2x8x4x16xf32>, %arg2: tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.reshape %arg0 : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x1x16xf32>
    %1 = stablehlo.dot_general %0, %arg1, batching_dims = [0, 2] x [0, 2], contracting_dims = [4] x [3], precision = [DEFAULT, DEFAULT] : (tensor<2x8x4x1x16xf32>, tensor<2x8x4x16xf32>) -> tensor<2x4x8x1x8xf32>
    %cst = stablehlo.constant dense<2.500000e-01> : tensor<f32>
    %2 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<2x4x8x1x8xf32>
    %3 = stablehlo.multiply %1, %2 : tensor<2x4x8x1x8xf32>
    %cst_0 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %4 = stablehlo.reduce(%3 init: %cst_0) applies stablehlo.maximum across dimensions = [4] : (tensor<2x4x8x1x8xf32>, tensor<f32>) -> tensor<2x4x8x1xf32>
    %cst_1 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %5 = stablehlo.broadcast_in_dim %cst_1, dims = [] : (tensor<f32>) -> tensor<2x4x8x1xf32>
    %6 = stablehlo.maximum %5, %4 : tensor<2x4x8x1xf32>
    %7 = stablehlo.transpose %6, dims = [3, 0, 1, 2] : (tensor<2x4x8x1xf32>) -> tensor<1x2x4x8xf32>
    %8 = stablehlo.broadcast_in_dim %7, dims = [0, 1, 2, 3] : (tensor<1x2x4x8xf32>) -> tensor<1x2x4x8x1xf32>
    %9 = stablehlo.transpose %3, dims = [3, 0, 1, 2, 4] : (tensor<2x4x8x1x8xf32>) -> tensor<1x2x4x8x8xf32>
    %10 = stablehlo.broadcast_in_dim %8, dims = [0, 1, 2, 3, 4] : (tensor<1x2x4x8x1xf32>) -> tensor<1x2x4x8x8xf32>
    %11 = stablehlo.subtract %9, %10 : tensor<1x2x4x8x8xf32>
    %12 = stablehlo.exponential %11 : tensor<1x2x4x8x8xf32>
    %cst_2 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %13 = stablehlo.reduce(%12 init: %cst_2) applies stablehlo.add across dimensions = [4] : (tensor<1x2x4x8x8xf32>, tensor<f32>) -> tensor<1x2x4x8xf32>
    %14 = stablehlo.broadcast_in_dim %13, dims = [0, 1, 2, 3] : (tensor<1x2x4x8xf32>) -> tensor<1x2x4x8x1xf32>
    %15 = stablehlo.broadcast_in_dim %14, dims = [0, 1, 2, 3, 4] : (tensor<1x2x4x8x1xf32>) -> tensor<1x2x4x8x8xf32>
    %16 = stablehlo.divide %12, %15 : tensor<1x2x4x8x8xf32>
    %17 = stablehlo.dot_general %arg2, %16, batching_dims = [0, 2] x [1, 2], contracting_dims = [1] x [4], precision = [DEFAULT, DEFAULT] : (tensor<2x8x4x16xf32>, tensor<1x2x4x8x8xf32>) -> tensor<2x4x16x1x8xf32>
    %18 = stablehlo.transpose %17, dims = [3, 0, 4, 1, 2] : (tensor<2x4x16x1x8xf32>) -> tensor<1x2x8x4x16xf32>
    %19 = stablehlo.transpose %18, dims = [1, 2, 3, 0, 4] : (tensor<1x2x8x4x16xf32>) -> tensor<2x8x4x1x16xf32>
    %20 = stablehlo.reshape %19 : (tensor<2x8x4x1x16xf32>) -> tensor<2x8x4x16xf32>
    return %20 : tensor<2x8x4x16xf32>
  }
}

// -----

// is_causal=True: the iota triangle becomes causal = true.
// CHECK-LABEL: module @jit_dpa_causal
// CHECK: "nn.attention"({{.*}}) {causal = true}
// CHECK-NOT: prim.iota
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 43 of 43 StableHLO ops (1 composites: nn.attention x1); left: none
module @jit_dpa_causal attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x8x4x16xf32>, %arg1: tensor<2x8x4x16xf32>, %arg2: tensor<2x8x4x16xf32>) -> (tensor<2x8x4x16xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.reshape %arg0 : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x1x16xf32>
    %1 = stablehlo.dot_general %0, %arg1, batching_dims = [0, 2] x [0, 2], contracting_dims = [4] x [3], precision = [DEFAULT, DEFAULT] : (tensor<2x8x4x1x16xf32>, tensor<2x8x4x16xf32>) -> tensor<2x4x8x1x8xf32>
    %cst = stablehlo.constant dense<2.500000e-01> : tensor<f32>
    %2 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<2x4x8x1x8xf32>
    %3 = stablehlo.multiply %1, %2 : tensor<2x4x8x1x8xf32>
    %c = stablehlo.constant dense<true> : tensor<i1>
    %4 = stablehlo.broadcast_in_dim %c, dims = [] : (tensor<i1>) -> tensor<2x4x8x8xi1>
    %c_0 = stablehlo.constant dense<true> : tensor<i1>
    %5 = stablehlo.broadcast_in_dim %c_0, dims = [] : (tensor<i1>) -> tensor<8x8xi1>
    %6 = call @tril(%5) : (tensor<8x8xi1>) -> tensor<8x8xi1>
    %7 = stablehlo.broadcast_in_dim %6, dims = [2, 3] : (tensor<8x8xi1>) -> tensor<1x1x8x8xi1>
    %8 = stablehlo.broadcast_in_dim %7, dims = [0, 1, 2, 3] : (tensor<1x1x8x8xi1>) -> tensor<2x4x8x8xi1>
    %9 = stablehlo.and %4, %8 : tensor<2x4x8x8xi1>
    %cst_1 = stablehlo.constant dense<-2.38197633E+38> : tensor<f32>
    %10 = call @_where(%9, %3, %cst_1) : (tensor<2x4x8x8xi1>, tensor<2x4x8x1x8xf32>, tensor<f32>) -> tensor<1x2x4x8x8xf32>
    %cst_2 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %11 = stablehlo.reduce(%10 init: %cst_2) applies stablehlo.maximum across dimensions = [4] : (tensor<1x2x4x8x8xf32>, tensor<f32>) -> tensor<1x2x4x8xf32>
    %cst_3 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %12 = stablehlo.broadcast_in_dim %cst_3, dims = [] : (tensor<f32>) -> tensor<1x2x4x8xf32>
    %13 = stablehlo.maximum %12, %11 : tensor<1x2x4x8xf32>
    %14 = stablehlo.broadcast_in_dim %13, dims = [0, 1, 2, 3] : (tensor<1x2x4x8xf32>) -> tensor<1x2x4x8x1xf32>
    %15 = stablehlo.broadcast_in_dim %14, dims = [0, 1, 2, 3, 4] : (tensor<1x2x4x8x1xf32>) -> tensor<1x2x4x8x8xf32>
    %16 = stablehlo.subtract %10, %15 : tensor<1x2x4x8x8xf32>
    %17 = stablehlo.exponential %16 : tensor<1x2x4x8x8xf32>
    %cst_4 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %18 = stablehlo.reduce(%17 init: %cst_4) applies stablehlo.add across dimensions = [4] : (tensor<1x2x4x8x8xf32>, tensor<f32>) -> tensor<1x2x4x8xf32>
    %19 = stablehlo.broadcast_in_dim %18, dims = [0, 1, 2, 3] : (tensor<1x2x4x8xf32>) -> tensor<1x2x4x8x1xf32>
    %20 = stablehlo.broadcast_in_dim %19, dims = [0, 1, 2, 3, 4] : (tensor<1x2x4x8x1xf32>) -> tensor<1x2x4x8x8xf32>
    %21 = stablehlo.divide %17, %20 : tensor<1x2x4x8x8xf32>
    %22 = stablehlo.dot_general %arg2, %21, batching_dims = [0, 2] x [1, 2], contracting_dims = [1] x [4], precision = [DEFAULT, DEFAULT] : (tensor<2x8x4x16xf32>, tensor<1x2x4x8x8xf32>) -> tensor<2x4x16x1x8xf32>
    %23 = stablehlo.transpose %22, dims = [3, 0, 4, 1, 2] : (tensor<2x4x16x1x8xf32>) -> tensor<1x2x8x4x16xf32>
    %24 = stablehlo.transpose %23, dims = [1, 2, 3, 0, 4] : (tensor<1x2x8x4x16xf32>) -> tensor<2x8x4x1x16xf32>
    %25 = stablehlo.reshape %24 : (tensor<2x8x4x1x16xf32>) -> tensor<2x8x4x16xf32>
    return %25 : tensor<2x8x4x16xf32>
  }
  func.func private @tril(%arg0: tensor<8x8xi1>) -> tensor<8x8xi1> {
    %0 = stablehlo.iota dim = 0 : tensor<8x8xi32>
    %c = stablehlo.constant dense<0> : tensor<i32>
    %1 = stablehlo.broadcast_in_dim %c, dims = [] : (tensor<i32>) -> tensor<8x8xi32>
    %2 = stablehlo.add %0, %1 : tensor<8x8xi32>
    %3 = stablehlo.iota dim = 1 : tensor<8x8xi32>
    %4 = stablehlo.compare GE, %2, %3, SIGNED : (tensor<8x8xi32>, tensor<8x8xi32>) -> tensor<8x8xi1>
    %c_0 = stablehlo.constant dense<false> : tensor<i1>
    %5 = stablehlo.broadcast_in_dim %c_0, dims = [] : (tensor<i1>) -> tensor<8x8xi1>
    %6 = stablehlo.select %4, %arg0, %5 : tensor<8x8xi1>, tensor<8x8xi1>
    return %6 : tensor<8x8xi1>
  }
  func.func private @_where(%arg0: tensor<2x4x8x8xi1>, %arg1: tensor<2x4x8x1x8xf32>, %arg2: tensor<f32>) -> tensor<1x2x4x8x8xf32> {
    %0 = stablehlo.broadcast_in_dim %arg2, dims = [] : (tensor<f32>) -> tensor<2x4x8x8xf32>
    %1 = stablehlo.broadcast_in_dim %arg0, dims = [1, 2, 3, 4] : (tensor<2x4x8x8xi1>) -> tensor<1x2x4x8x8xi1>
    %2 = stablehlo.broadcast_in_dim %0, dims = [1, 2, 3, 4] : (tensor<2x4x8x8xf32>) -> tensor<1x2x4x8x8xf32>
    %3 = stablehlo.transpose %arg1, dims = [3, 0, 1, 2, 4] : (tensor<2x4x8x1x8xf32>) -> tensor<1x2x4x8x8xf32>
    %4 = stablehlo.select %1, %3, %2 : tensor<1x2x4x8x8xi1>, tensor<1x2x4x8x8xf32>
    return %4 : tensor<1x2x4x8x8xf32>
  }
}

// -----

// A boolean mask becomes nn.attention's mask operand.
// CHECK-LABEL: module @jit_dpa_mask
// CHECK: "nn.attention"(%{{.*}}, %{{.*}}, %{{.*}}, %arg3) : (tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x8xi1>)
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 33 of 33 StableHLO ops (1 composites: nn.attention x1); left: none
module @jit_dpa_mask attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x8x4x16xf32>, %arg1: tensor<2x8x4x16xf32>, %arg2: tensor<2x8x4x16xf32>, %arg3: tensor<2x4x8x8xi1>) -> (tensor<2x8x4x16xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.reshape %arg0 : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x1x16xf32>
    %1 = stablehlo.reshape %arg3 : (tensor<2x4x8x8xi1>) -> tensor<2x4x1x8x8xi1>
    %2 = stablehlo.dot_general %0, %arg1, batching_dims = [0, 2] x [0, 2], contracting_dims = [4] x [3], precision = [DEFAULT, DEFAULT] : (tensor<2x8x4x1x16xf32>, tensor<2x8x4x16xf32>) -> tensor<2x4x8x1x8xf32>
    %cst = stablehlo.constant dense<2.500000e-01> : tensor<f32>
    %3 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<2x4x8x1x8xf32>
    %4 = stablehlo.multiply %2, %3 : tensor<2x4x8x1x8xf32>
    %c = stablehlo.constant dense<true> : tensor<i1>
    %5 = stablehlo.broadcast_in_dim %c, dims = [] : (tensor<i1>) -> tensor<2x4x8x8xi1>
    %6 = stablehlo.broadcast_in_dim %5, dims = [1, 2, 3, 4] : (tensor<2x4x8x8xi1>) -> tensor<1x2x4x8x8xi1>
    %7 = stablehlo.transpose %1, dims = [2, 0, 1, 3, 4] : (tensor<2x4x1x8x8xi1>) -> tensor<1x2x4x8x8xi1>
    %8 = stablehlo.and %6, %7 : tensor<1x2x4x8x8xi1>
    %cst_0 = stablehlo.constant dense<-2.38197633E+38> : tensor<f32>
    %9 = call @_where(%8, %4, %cst_0) : (tensor<1x2x4x8x8xi1>, tensor<2x4x8x1x8xf32>, tensor<f32>) -> tensor<1x2x4x8x8xf32>
    %cst_1 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %10 = stablehlo.reduce(%9 init: %cst_1) applies stablehlo.maximum across dimensions = [4] : (tensor<1x2x4x8x8xf32>, tensor<f32>) -> tensor<1x2x4x8xf32>
    %cst_2 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %11 = stablehlo.broadcast_in_dim %cst_2, dims = [] : (tensor<f32>) -> tensor<1x2x4x8xf32>
    %12 = stablehlo.maximum %11, %10 : tensor<1x2x4x8xf32>
    %13 = stablehlo.broadcast_in_dim %12, dims = [0, 1, 2, 3] : (tensor<1x2x4x8xf32>) -> tensor<1x2x4x8x1xf32>
    %14 = stablehlo.broadcast_in_dim %13, dims = [0, 1, 2, 3, 4] : (tensor<1x2x4x8x1xf32>) -> tensor<1x2x4x8x8xf32>
    %15 = stablehlo.subtract %9, %14 : tensor<1x2x4x8x8xf32>
    %16 = stablehlo.exponential %15 : tensor<1x2x4x8x8xf32>
    %cst_3 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %17 = stablehlo.reduce(%16 init: %cst_3) applies stablehlo.add across dimensions = [4] : (tensor<1x2x4x8x8xf32>, tensor<f32>) -> tensor<1x2x4x8xf32>
    %18 = stablehlo.broadcast_in_dim %17, dims = [0, 1, 2, 3] : (tensor<1x2x4x8xf32>) -> tensor<1x2x4x8x1xf32>
    %19 = stablehlo.broadcast_in_dim %18, dims = [0, 1, 2, 3, 4] : (tensor<1x2x4x8x1xf32>) -> tensor<1x2x4x8x8xf32>
    %20 = stablehlo.divide %16, %19 : tensor<1x2x4x8x8xf32>
    %21 = stablehlo.dot_general %arg2, %20, batching_dims = [0, 2] x [1, 2], contracting_dims = [1] x [4], precision = [DEFAULT, DEFAULT] : (tensor<2x8x4x16xf32>, tensor<1x2x4x8x8xf32>) -> tensor<2x4x16x1x8xf32>
    %22 = stablehlo.transpose %21, dims = [3, 0, 4, 1, 2] : (tensor<2x4x16x1x8xf32>) -> tensor<1x2x8x4x16xf32>
    %23 = stablehlo.transpose %22, dims = [1, 2, 3, 0, 4] : (tensor<1x2x8x4x16xf32>) -> tensor<2x8x4x1x16xf32>
    %24 = stablehlo.reshape %23 : (tensor<2x8x4x1x16xf32>) -> tensor<2x8x4x16xf32>
    return %24 : tensor<2x8x4x16xf32>
  }
  func.func private @_where(%arg0: tensor<1x2x4x8x8xi1>, %arg1: tensor<2x4x8x1x8xf32>, %arg2: tensor<f32>) -> tensor<1x2x4x8x8xf32> {
    %0 = stablehlo.broadcast_in_dim %arg2, dims = [] : (tensor<f32>) -> tensor<2x4x8x8xf32>
    %1 = stablehlo.broadcast_in_dim %0, dims = [1, 2, 3, 4] : (tensor<2x4x8x8xf32>) -> tensor<1x2x4x8x8xf32>
    %2 = stablehlo.transpose %arg1, dims = [3, 0, 1, 2, 4] : (tensor<2x4x8x1x8xf32>) -> tensor<1x2x4x8x8xf32>
    %3 = stablehlo.select %arg0, %2, %1 : tensor<1x2x4x8x8xi1>, tensor<1x2x4x8x8xf32>
    return %3 : tensor<1x2x4x8x8xf32>
  }
}

// -----

// Hand-written softmax(q k^T / sqrt(d)) v is nn.attention.
// CHECK-LABEL: module @jit_attention_by_hand
// CHECK: %0 = "nn.attention"(%arg0, %arg1, %arg2) : (tensor<2x4x8x16xf32>, tensor<2x4x6x16xf32>, tensor<2x4x6x8xf32>) -> tensor<2x4x8x8xf32>
// CHECK-NEXT: return %0
// STATS: stablehlo-to-nn: raised 22 of 22 StableHLO ops (1 composites: nn.attention x1); left: none
module @jit_attention_by_hand attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x4x8x16xf32>, %arg1: tensor<2x4x6x16xf32>, %arg2: tensor<2x4x6x8xf32>) -> (tensor<2x4x8x8xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.transpose %arg1, dims = [0, 1, 3, 2] : (tensor<2x4x6x16xf32>) -> tensor<2x4x16x6xf32>
    %1 = stablehlo.dot_general %arg0, %0, batching_dims = [0, 1] x [0, 1], contracting_dims = [3] x [2], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8x16xf32>, tensor<2x4x16x6xf32>) -> tensor<2x4x8x6xf32>
    %cst = stablehlo.constant dense<1.600000e+01> : tensor<f32>
    %2 = stablehlo.sqrt %cst : tensor<f32>
    %3 = stablehlo.convert %2 : tensor<f32>
    %4 = stablehlo.broadcast_in_dim %3, dims = [] : (tensor<f32>) -> tensor<2x4x8x6xf32>
    %5 = stablehlo.divide %1, %4 : tensor<2x4x8x6xf32>
    %cst_0 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %6 = stablehlo.reduce(%5 init: %cst_0) applies stablehlo.maximum across dimensions = [3] : (tensor<2x4x8x6xf32>, tensor<f32>) -> tensor<2x4x8xf32>
    %cst_1 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %7 = stablehlo.broadcast_in_dim %cst_1, dims = [] : (tensor<f32>) -> tensor<2x4x8xf32>
    %8 = stablehlo.maximum %7, %6 : tensor<2x4x8xf32>
    %9 = stablehlo.broadcast_in_dim %8, dims = [0, 1, 2] : (tensor<2x4x8xf32>) -> tensor<2x4x8x1xf32>
    %10 = stablehlo.broadcast_in_dim %9, dims = [0, 1, 2, 3] : (tensor<2x4x8x1xf32>) -> tensor<2x4x8x6xf32>
    %11 = stablehlo.subtract %5, %10 : tensor<2x4x8x6xf32>
    %12 = stablehlo.exponential %11 : tensor<2x4x8x6xf32>
    %cst_2 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %13 = stablehlo.reduce(%12 init: %cst_2) applies stablehlo.add across dimensions = [3] : (tensor<2x4x8x6xf32>, tensor<f32>) -> tensor<2x4x8xf32>
    %14 = stablehlo.broadcast_in_dim %13, dims = [0, 1, 2] : (tensor<2x4x8xf32>) -> tensor<2x4x8x1xf32>
    %15 = stablehlo.broadcast_in_dim %14, dims = [0, 1, 2, 3] : (tensor<2x4x8x1xf32>) -> tensor<2x4x8x6xf32>
    %16 = stablehlo.divide %12, %15 : tensor<2x4x8x6xf32>
    %17 = stablehlo.dot_general %16, %arg2, batching_dims = [0, 1] x [0, 1], contracting_dims = [3] x [2], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8x6xf32>, tensor<2x4x6x8xf32>) -> tensor<2x4x8x8xf32>
    return %17 : tensor<2x4x8x8xf32>
  }
}

// -----

// Flax MultiHeadDotProductAttention: projections stay prim.contract, the core is nn.attention.
// CHECK-LABEL: module @jit_mha
// CHECK-COUNT-3: "nn.linear"(%arg8, {{.*}}) : (tensor<2x4x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
// CHECK: %[[A:.*]] = "nn.attention"({{.*}}) : (tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
// CHECK: %[[T:.*]] = "prim.transpose"(%[[A]]) {permutation = array<i64: 0, 2, 1, 3>}
// CHECK: %[[O:.*]] = "prim.reshape"(%[[T]]) : (tensor<2x4x2x4xf32>) -> tensor<2x4x8xf32>
// CHECK: %[[W:.*]] = "prim.reshape"(%arg3) : (tensor<2x4x8xf32>) -> tensor<8x8xf32>
// CHECK: "nn.linear"(%[[O]], %[[W]], %arg2)
// CHECK-NOT: prim.contract
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 38 of 38 StableHLO ops (5 composites: nn.attention x1, nn.linear x4); left: none
module @jit_mha attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x4xf32>, %arg1: tensor<8x2x4xf32>, %arg2: tensor<8xf32>, %arg3: tensor<2x4x8xf32>, %arg4: tensor<2x4xf32>, %arg5: tensor<8x2x4xf32>, %arg6: tensor<2x4xf32>, %arg7: tensor<8x2x4xf32>, %arg8: tensor<2x4x8xf32>) -> (tensor<2x4x8xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.dot_general %arg8, %arg5, contracting_dims = [2] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<8x2x4xf32>) -> tensor<2x4x2x4xf32>
    %1 = stablehlo.reshape %arg4 : (tensor<2x4xf32>) -> tensor<1x1x2x4xf32>
    %2 = stablehlo.broadcast_in_dim %1, dims = [0, 1, 2, 3] : (tensor<1x1x2x4xf32>) -> tensor<2x4x2x4xf32>
    %3 = stablehlo.add %0, %2 : tensor<2x4x2x4xf32>
    %4 = stablehlo.dot_general %arg8, %arg1, contracting_dims = [2] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<8x2x4xf32>) -> tensor<2x4x2x4xf32>
    %5 = stablehlo.reshape %arg0 : (tensor<2x4xf32>) -> tensor<1x1x2x4xf32>
    %6 = stablehlo.broadcast_in_dim %5, dims = [0, 1, 2, 3] : (tensor<1x1x2x4xf32>) -> tensor<2x4x2x4xf32>
    %7 = stablehlo.add %4, %6 : tensor<2x4x2x4xf32>
    %8 = stablehlo.dot_general %arg8, %arg7, contracting_dims = [2] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<8x2x4xf32>) -> tensor<2x4x2x4xf32>
    %9 = stablehlo.reshape %arg6 : (tensor<2x4xf32>) -> tensor<1x1x2x4xf32>
    %10 = stablehlo.broadcast_in_dim %9, dims = [0, 1, 2, 3] : (tensor<1x1x2x4xf32>) -> tensor<2x4x2x4xf32>
    %11 = stablehlo.add %8, %10 : tensor<2x4x2x4xf32>
    %cst = stablehlo.constant dense<4.000000e+00> : tensor<f32>
    %12 = stablehlo.sqrt %cst : tensor<f32>
    %13 = stablehlo.convert %12 : tensor<f32>
    %14 = stablehlo.broadcast_in_dim %13, dims = [] : (tensor<f32>) -> tensor<2x4x2x4xf32>
    %15 = stablehlo.divide %3, %14 : tensor<2x4x2x4xf32>
    %16 = stablehlo.dot_general %15, %7, batching_dims = [0, 2] x [0, 2], contracting_dims = [3] x [3], precision = [DEFAULT, DEFAULT] : (tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32>) -> tensor<2x2x4x4xf32>
    %cst_0 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %17 = stablehlo.reduce(%16 init: %cst_0) applies stablehlo.maximum across dimensions = [3] : (tensor<2x2x4x4xf32>, tensor<f32>) -> tensor<2x2x4xf32>
    %cst_1 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %18 = stablehlo.broadcast_in_dim %cst_1, dims = [] : (tensor<f32>) -> tensor<2x2x4xf32>
    %19 = stablehlo.maximum %18, %17 : tensor<2x2x4xf32>
    %20 = stablehlo.broadcast_in_dim %19, dims = [0, 1, 2] : (tensor<2x2x4xf32>) -> tensor<2x2x4x1xf32>
    %21 = stablehlo.broadcast_in_dim %20, dims = [0, 1, 2, 3] : (tensor<2x2x4x1xf32>) -> tensor<2x2x4x4xf32>
    %22 = stablehlo.subtract %16, %21 : tensor<2x2x4x4xf32>
    %23 = stablehlo.exponential %22 : tensor<2x2x4x4xf32>
    %cst_2 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %24 = stablehlo.reduce(%23 init: %cst_2) applies stablehlo.add across dimensions = [3] : (tensor<2x2x4x4xf32>, tensor<f32>) -> tensor<2x2x4xf32>
    %25 = stablehlo.broadcast_in_dim %24, dims = [0, 1, 2] : (tensor<2x2x4xf32>) -> tensor<2x2x4x1xf32>
    %26 = stablehlo.broadcast_in_dim %25, dims = [0, 1, 2, 3] : (tensor<2x2x4x1xf32>) -> tensor<2x2x4x4xf32>
    %27 = stablehlo.divide %23, %26 : tensor<2x2x4x4xf32>
    %28 = stablehlo.dot_general %11, %27, batching_dims = [0, 2] x [0, 1], contracting_dims = [1] x [3], precision = [DEFAULT, DEFAULT] : (tensor<2x4x2x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
    %29 = stablehlo.transpose %28, dims = [0, 3, 1, 2] : (tensor<2x2x4x4xf32>) -> tensor<2x4x2x4xf32>
    %30 = stablehlo.dot_general %29, %arg3, contracting_dims = [2, 3] x [0, 1], precision = [DEFAULT, DEFAULT] : (tensor<2x4x2x4xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %31 = stablehlo.reshape %arg2 : (tensor<8xf32>) -> tensor<1x1x8xf32>
    %32 = stablehlo.broadcast_in_dim %31, dims = [0, 1, 2] : (tensor<1x1x8xf32>) -> tensor<2x4x8xf32>
    %33 = stablehlo.add %30, %32 : tensor<2x4x8xf32>
    return %33 : tensor<2x4x8xf32>
  }
}

// -----

// Flax Dense is nn.linear.
// CHECK-LABEL: module @jit_dense
// CHECK: %0 = "nn.linear"(%arg2, %arg1, %arg0) : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: return %0
// STATS: stablehlo-to-nn: raised 4 of 4 StableHLO ops (1 composites: nn.linear x1); left: none
module @jit_dense attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<16xf32>, %arg1: tensor<8x16xf32>, %arg2: tensor<4x8xf32>) -> (tensor<4x16xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.dot_general %arg2, %arg1, contracting_dims = [1] x [0], precision = [DEFAULT, DEFAULT] : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    %1 = stablehlo.reshape %arg0 : (tensor<16xf32>) -> tensor<1x16xf32>
    %2 = stablehlo.broadcast_in_dim %1, dims = [0, 1] : (tensor<1x16xf32>) -> tensor<4x16xf32>
    %3 = stablehlo.add %0, %2 : tensor<4x16xf32>
    return %3 : tensor<4x16xf32>
  }
}

// -----

// Flax make_causal_mask (broadcast 1-D iotas, a float mask compared back to bool) is causal = true.
// CHECK-LABEL: module @jit_mha_causal
// CHECK: "nn.attention"({{.*}}) {causal = true} : (tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
// CHECK-NOT: prim.iota
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 52 of 52 StableHLO ops (5 composites: nn.attention x1, nn.linear x4); left: none
module @jit_mha_causal attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<2x4xf32>, %arg1: tensor<8x2x4xf32>, %arg2: tensor<8xf32>, %arg3: tensor<2x4x8xf32>, %arg4: tensor<2x4xf32>, %arg5: tensor<8x2x4xf32>, %arg6: tensor<2x4xf32>, %arg7: tensor<8x2x4xf32>, %arg8: tensor<2x4x8xf32>) -> (tensor<2x4x8xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.iota dim = 0 : tensor<4xi32>
    %1 = stablehlo.broadcast_in_dim %0, dims = [1] : (tensor<4xi32>) -> tensor<2x4xi32>
    %2 = stablehlo.broadcast_in_dim %1, dims = [0, 1] : (tensor<2x4xi32>) -> tensor<2x4x1xi32>
    %3 = stablehlo.broadcast_in_dim %1, dims = [0, 2] : (tensor<2x4xi32>) -> tensor<2x1x4xi32>
    %4 = stablehlo.broadcast_in_dim %2, dims = [0, 1, 2] : (tensor<2x4x1xi32>) -> tensor<2x4x4xi32>
    %5 = stablehlo.broadcast_in_dim %3, dims = [0, 1, 2] : (tensor<2x1x4xi32>) -> tensor<2x4x4xi32>
    %6 = stablehlo.compare GE, %4, %5, SIGNED : (tensor<2x4x4xi32>, tensor<2x4x4xi32>) -> tensor<2x4x4xi1>
    %7 = stablehlo.broadcast_in_dim %6, dims = [0, 2, 3] : (tensor<2x4x4xi1>) -> tensor<2x1x4x4xi1>
    %8 = stablehlo.convert %7 : (tensor<2x1x4x4xi1>) -> tensor<2x1x4x4xf32>
    %9 = stablehlo.dot_general %arg8, %arg5, contracting_dims = [2] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<8x2x4xf32>) -> tensor<2x4x2x4xf32>
    %10 = stablehlo.reshape %arg4 : (tensor<2x4xf32>) -> tensor<1x1x2x4xf32>
    %11 = stablehlo.broadcast_in_dim %10, dims = [0, 1, 2, 3] : (tensor<1x1x2x4xf32>) -> tensor<2x4x2x4xf32>
    %12 = stablehlo.add %9, %11 : tensor<2x4x2x4xf32>
    %13 = stablehlo.dot_general %arg8, %arg1, contracting_dims = [2] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<8x2x4xf32>) -> tensor<2x4x2x4xf32>
    %14 = stablehlo.reshape %arg0 : (tensor<2x4xf32>) -> tensor<1x1x2x4xf32>
    %15 = stablehlo.broadcast_in_dim %14, dims = [0, 1, 2, 3] : (tensor<1x1x2x4xf32>) -> tensor<2x4x2x4xf32>
    %16 = stablehlo.add %13, %15 : tensor<2x4x2x4xf32>
    %17 = stablehlo.dot_general %arg8, %arg7, contracting_dims = [2] x [0], precision = [DEFAULT, DEFAULT] : (tensor<2x4x8xf32>, tensor<8x2x4xf32>) -> tensor<2x4x2x4xf32>
    %18 = stablehlo.reshape %arg6 : (tensor<2x4xf32>) -> tensor<1x1x2x4xf32>
    %19 = stablehlo.broadcast_in_dim %18, dims = [0, 1, 2, 3] : (tensor<1x1x2x4xf32>) -> tensor<2x4x2x4xf32>
    %20 = stablehlo.add %17, %19 : tensor<2x4x2x4xf32>
    %cst = stablehlo.constant dense<4.000000e+00> : tensor<f32>
    %21 = stablehlo.sqrt %cst : tensor<f32>
    %22 = stablehlo.convert %21 : tensor<f32>
    %23 = stablehlo.broadcast_in_dim %22, dims = [] : (tensor<f32>) -> tensor<2x4x2x4xf32>
    %24 = stablehlo.divide %12, %23 : tensor<2x4x2x4xf32>
    %25 = stablehlo.dot_general %24, %16, batching_dims = [0, 2] x [0, 2], contracting_dims = [3] x [3], precision = [DEFAULT, DEFAULT] : (tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32>) -> tensor<2x2x4x4xf32>
    %cst_0 = stablehlo.constant dense<-3.40282347E+38> : tensor<f32>
    %26 = call @_where(%8, %25, %cst_0) : (tensor<2x1x4x4xf32>, tensor<2x2x4x4xf32>, tensor<f32>) -> tensor<2x2x4x4xf32>
    %cst_1 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %27 = stablehlo.reduce(%26 init: %cst_1) applies stablehlo.maximum across dimensions = [3] : (tensor<2x2x4x4xf32>, tensor<f32>) -> tensor<2x2x4xf32>
    %cst_2 = stablehlo.constant dense<0xFF800000> : tensor<f32>
    %28 = stablehlo.broadcast_in_dim %cst_2, dims = [] : (tensor<f32>) -> tensor<2x2x4xf32>
    %29 = stablehlo.maximum %28, %27 : tensor<2x2x4xf32>
    %30 = stablehlo.broadcast_in_dim %29, dims = [0, 1, 2] : (tensor<2x2x4xf32>) -> tensor<2x2x4x1xf32>
    %31 = stablehlo.broadcast_in_dim %30, dims = [0, 1, 2, 3] : (tensor<2x2x4x1xf32>) -> tensor<2x2x4x4xf32>
    %32 = stablehlo.subtract %26, %31 : tensor<2x2x4x4xf32>
    %33 = stablehlo.exponential %32 : tensor<2x2x4x4xf32>
    %cst_3 = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %34 = stablehlo.reduce(%33 init: %cst_3) applies stablehlo.add across dimensions = [3] : (tensor<2x2x4x4xf32>, tensor<f32>) -> tensor<2x2x4xf32>
    %35 = stablehlo.broadcast_in_dim %34, dims = [0, 1, 2] : (tensor<2x2x4xf32>) -> tensor<2x2x4x1xf32>
    %36 = stablehlo.broadcast_in_dim %35, dims = [0, 1, 2, 3] : (tensor<2x2x4x1xf32>) -> tensor<2x2x4x4xf32>
    %37 = stablehlo.divide %33, %36 : tensor<2x2x4x4xf32>
    %38 = stablehlo.dot_general %20, %37, batching_dims = [0, 2] x [0, 1], contracting_dims = [1] x [3], precision = [DEFAULT, DEFAULT] : (tensor<2x4x2x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
    %39 = stablehlo.transpose %38, dims = [0, 3, 1, 2] : (tensor<2x2x4x4xf32>) -> tensor<2x4x2x4xf32>
    %40 = stablehlo.dot_general %39, %arg3, contracting_dims = [2, 3] x [0, 1], precision = [DEFAULT, DEFAULT] : (tensor<2x4x2x4xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %41 = stablehlo.reshape %arg2 : (tensor<8xf32>) -> tensor<1x1x8xf32>
    %42 = stablehlo.broadcast_in_dim %41, dims = [0, 1, 2] : (tensor<1x1x8xf32>) -> tensor<2x4x8xf32>
    %43 = stablehlo.add %40, %42 : tensor<2x4x8xf32>
    return %43 : tensor<2x4x8xf32>
  }
  func.func private @_where(%arg0: tensor<2x1x4x4xf32>, %arg1: tensor<2x2x4x4xf32>, %arg2: tensor<f32>) -> tensor<2x2x4x4xf32> {
    %cst = stablehlo.constant dense<0.000000e+00> : tensor<f32>
    %0 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<2x1x4x4xf32>
    %1 = stablehlo.compare NE, %arg0, %0, FLOAT : (tensor<2x1x4x4xf32>, tensor<2x1x4x4xf32>) -> tensor<2x1x4x4xi1>
    %2 = stablehlo.broadcast_in_dim %1, dims = [0, 1, 2, 3] : (tensor<2x1x4x4xi1>) -> tensor<2x2x4x4xi1>
    %3 = stablehlo.broadcast_in_dim %arg2, dims = [] : (tensor<f32>) -> tensor<2x2x4x4xf32>
    %4 = stablehlo.select %2, %arg1, %3 : tensor<2x2x4x4xi1>, tensor<2x2x4x4xf32>
    return %4 : tensor<2x2x4x4xf32>
  }
}

// -----

// chlo.top_k -> nn.top_k (two results); chlo.ragged_dot in lax.ragged_dot's form -> nn.grouped_matmul.
// CHECK-LABEL: func.func @top_k_ragged
// CHECK: %[[T:.*]]:2 = "nn.top_k"(%arg0) {k = 2 : i64} : (tensor<8x4xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
// CHECK: "nn.grouped_matmul"(%arg1, %arg2, %arg3) : (tensor<8x4xf32>, tensor<3x4x5xf32>, tensor<3xi32>) -> tensor<8x5xf32>
// CHECK-NOT: chlo.
func.func @top_k_ragged(%x: tensor<8x4xf32>, %a: tensor<8x4xf32>, %w: tensor<3x4x5xf32>, %s: tensor<3xi32>) -> (tensor<8x2xf32>, tensor<8x2xi32>, tensor<8x5xf32>) {
  %values, %indices = chlo.top_k(%x, k = 2) : tensor<8x4xf32> -> (tensor<8x2xf32>, tensor<8x2xi32>)
  %0 = "chlo.ragged_dot"(%a, %w, %s) <{precision_config = [#chlo<precision DEFAULT>, #chlo<precision DEFAULT>], ragged_dot_dimension_numbers = #chlo.ragged_dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [1], lhs_ragged_dimensions = [0], rhs_group_dimensions = [0]>}> : (tensor<8x4xf32>, tensor<3x4x5xf32>, tensor<3xi32>) -> tensor<8x5xf32>
  return %values, %indices, %0 : tensor<8x2xf32>, tensor<8x2xi32>, tensor<8x5xf32>
}

// -----

// Dynamic StableHLO (jax.jit(f).lower with jax.export.symbolic_shape specs): every dynamic op
// becomes a prim op whose run-time sizes come from JAX's shape computation, which is then
// gone. An unbound dimension variable (here %arg0, "b") is read with tensor.extract.
// CHECK-LABEL: module @jit_dynamic_bias
// CHECK: %[[E:.*]] = tensor.extract %arg0[] : tensor<i32>
// CHECK: %[[B:.*]] = arith.index_cast %[[E]] : i32 to index
// CHECK: %[[BIAS:.*]] = "prim.broadcast"(%arg2, %[[B]]) {dims = array<i64: 1>} : (tensor<8xf32>, index) -> tensor<?x8xf32>
// CHECK: "prim.map"(%arg1, %[[BIAS]]) {fn = "add"}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 7 of 7 StableHLO ops (0 composites); left: none
module @jit_dynamic_bias attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<i32> {jax.global_constant = "b"}, %arg1: tensor<?x8xf32>, %arg2: tensor<8xf32>) -> (tensor<?x8xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.broadcast_in_dim %arg2, dims = [1] : (tensor<8xf32>) -> tensor<1x8xf32>
    %c = stablehlo.constant dense<8> : tensor<i32>
    %1 = stablehlo.reshape %arg0 : (tensor<i32>) -> tensor<1xi32>
    %c_0 = stablehlo.constant dense<8> : tensor<1xi32>
    %2 = stablehlo.concatenate %1, %c_0, dim = 0 : (tensor<1xi32>, tensor<1xi32>) -> tensor<2xi32>
    %3 = stablehlo.dynamic_broadcast_in_dim %0, %2, dims = [0, 1] : (tensor<1x8xf32>, tensor<2xi32>) -> tensor<?x8xf32>
    %4 = stablehlo.add %arg1, %3 : tensor<?x8xf32>
    return %4 : tensor<?x8xf32>
  }
}

// -----

// dynamic_reshape: prim.reshape with the sizes of its dynamic result dims.
// CHECK-LABEL: module @jit_dynamic_reshape
// CHECK: "prim.reshape"(%arg2, %{{.*}}, %{{.*}}) : (tensor<?x?x8xf32>, index, index) -> tensor<?x?x2x4xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 8 of 8 StableHLO ops (0 composites); left: none
module @jit_dynamic_reshape attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<i32> {jax.global_constant = "b"}, %arg1: tensor<i32> {jax.global_constant = "s"}, %arg2: tensor<?x?x8xf32>) -> (tensor<?x?x2x4xf32> {jax.result_info = "result"}) {
    %c = stablehlo.constant dense<2> : tensor<i32>
    %c_0 = stablehlo.constant dense<4> : tensor<i32>
    %0 = stablehlo.reshape %arg0 : (tensor<i32>) -> tensor<1xi32>
    %1 = stablehlo.reshape %arg1 : (tensor<i32>) -> tensor<1xi32>
    %c_1 = stablehlo.constant dense<2> : tensor<1xi32>
    %c_2 = stablehlo.constant dense<4> : tensor<1xi32>
    %2 = stablehlo.concatenate %0, %1, %c_1, %c_2, dim = 0 : (tensor<1xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<4xi32>
    %3 = stablehlo.dynamic_reshape %arg2, %2 : (tensor<?x?x8xf32>, tensor<4xi32>) -> tensor<?x?x2x4xf32>
    return %3 : tensor<?x?x2x4xf32>
  }
}

// -----

// dynamic_iota (jnp.arange of a symbolic size): prim.iota with its size; the 0 + 1 * iota
// JAX writes around it folds away.
// CHECK-LABEL: module @jit_dynamic_iota
// CHECK: %[[S:.*]] = arith.index_cast %{{.*}} : i32 to index
// CHECK: "prim.iota"(%[[S]]) {dim = 0 : i64} : (index) -> tensor<?xi32>
// CHECK-NOT: fn = "add"
// CHECK: "prim.broadcast"(%{{.*}}, %{{.*}}, %{{.*}}) {dims = array<i64: 1>} : (tensor<?xf32>, index, index) -> tensor<?x?xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 21 of 21 StableHLO ops (0 composites); left: none
module @jit_dynamic_iota attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<i32> {jax.global_constant = "b"}, %arg1: tensor<i32> {jax.global_constant = "s"}, %arg2: tensor<?x?xf32>) -> (tensor<?x?xf32> {jax.result_info = "result"}) {
    %0 = stablehlo.reshape %arg1 : (tensor<i32>) -> tensor<1xi32>
    %1 = stablehlo.dynamic_iota %0, dim = 0 : (tensor<1xi32>) -> tensor<?xi32>
    %c = stablehlo.constant dense<1> : tensor<i32>
    %2 = stablehlo.reshape %arg1 : (tensor<i32>) -> tensor<1xi32>
    %3 = stablehlo.dynamic_broadcast_in_dim %c, %2, dims = [] : (tensor<i32>, tensor<1xi32>) -> tensor<?xi32>
    %4 = stablehlo.multiply %3, %1 : tensor<?xi32>
    %c_0 = stablehlo.constant dense<0> : tensor<i32>
    %5 = stablehlo.reshape %arg1 : (tensor<i32>) -> tensor<1xi32>
    %6 = stablehlo.dynamic_broadcast_in_dim %c_0, %5, dims = [] : (tensor<i32>, tensor<1xi32>) -> tensor<?xi32>
    %7 = stablehlo.add %6, %4 : tensor<?xi32>
    %c_1 = stablehlo.constant dense<1> : tensor<i32>
    %c_2 = stablehlo.constant dense<1> : tensor<1xi32>
    %8 = stablehlo.reshape %arg1 : (tensor<i32>) -> tensor<1xi32>
    %9 = stablehlo.concatenate %c_2, %8, dim = 0 : (tensor<1xi32>, tensor<1xi32>) -> tensor<2xi32>
    %10 = stablehlo.dynamic_broadcast_in_dim %7, %9, dims = [1] : (tensor<?xi32>, tensor<2xi32>) -> tensor<1x?xi32>
    %11 = stablehlo.convert %10 : (tensor<1x?xi32>) -> tensor<1x?xf32>
    %12 = stablehlo.reshape %arg0 : (tensor<i32>) -> tensor<1xi32>
    %13 = stablehlo.reshape %arg1 : (tensor<i32>) -> tensor<1xi32>
    %14 = stablehlo.concatenate %12, %13, dim = 0 : (tensor<1xi32>, tensor<1xi32>) -> tensor<2xi32>
    %15 = stablehlo.dynamic_broadcast_in_dim %11, %14, dims = [0, 1] : (tensor<1x?xf32>, tensor<2xi32>) -> tensor<?x?xf32>
    %16 = stablehlo.multiply %arg2, %15 : tensor<?x?xf32>
    return %16 : tensor<?x?xf32>
  }
}

// -----

// dynamic_gather at a constant index (x[:, :, 1]): a prim.slice (limits -1: the run-time
// sizes) and a reshape dropping the collapsed dim.
// CHECK-LABEL: module @jit_dynamic_gather
// CHECK: %[[X:.*]] = "prim.reshape"(%arg2, %{{.*}}, %{{.*}}) : (tensor<?x?x12xf32>, index, index) -> tensor<?x?x3x4xf32>
// CHECK: %[[S:.*]] = "prim.slice"(%[[X]], %{{.*}}, %{{.*}}) {limit = array<i64: -1, -1, 2, 4>, start = array<i64: 0, 0, 1, 0>} : (tensor<?x?x3x4xf32>, index, index) -> tensor<?x?x1x4xf32>
// CHECK: "prim.reshape"(%[[S]], %{{.*}}, %{{.*}}) : (tensor<?x?x1x4xf32>, index, index) -> tensor<?x?x4xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 18 of 18 StableHLO ops (0 composites); left: none
module @jit_dynamic_gather attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<i32> {jax.global_constant = "b"}, %arg1: tensor<i32> {jax.global_constant = "s"}, %arg2: tensor<?x?x12xf32>) -> (tensor<?x?x4xf32> {jax.result_info = "result"}) {
    %c = stablehlo.constant dense<3> : tensor<i32>
    %c_0 = stablehlo.constant dense<4> : tensor<i32>
    %0 = stablehlo.reshape %arg0 : (tensor<i32>) -> tensor<1xi32>
    %1 = stablehlo.reshape %arg1 : (tensor<i32>) -> tensor<1xi32>
    %c_1 = stablehlo.constant dense<3> : tensor<1xi32>
    %c_2 = stablehlo.constant dense<4> : tensor<1xi32>
    %2 = stablehlo.concatenate %0, %1, %c_1, %c_2, dim = 0 : (tensor<1xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<4xi32>
    %3 = stablehlo.dynamic_reshape %arg2, %2 : (tensor<?x?x12xf32>, tensor<4xi32>) -> tensor<?x?x3x4xf32>
    %c_3 = stablehlo.constant dense<1> : tensor<i32>
    %4 = stablehlo.broadcast_in_dim %c_3, dims = [] : (tensor<i32>) -> tensor<1xi32>
    %c_4 = stablehlo.constant dense<1> : tensor<i32>
    %c_5 = stablehlo.constant dense<4> : tensor<i32>
    %5 = stablehlo.reshape %arg0 : (tensor<i32>) -> tensor<1xi32>
    %6 = stablehlo.reshape %arg1 : (tensor<i32>) -> tensor<1xi32>
    %c_6 = stablehlo.constant dense<1> : tensor<1xi32>
    %c_7 = stablehlo.constant dense<4> : tensor<1xi32>
    %7 = stablehlo.concatenate %5, %6, %c_6, %c_7, dim = 0 : (tensor<1xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<4xi32>
    %8 = "stablehlo.dynamic_gather"(%3, %4, %7) <{dimension_numbers = #stablehlo.gather<offset_dims = [0, 1, 2], collapsed_slice_dims = [2], start_index_map = [2]>, indices_are_sorted = true}> : (tensor<?x?x3x4xf32>, tensor<1xi32>, tensor<4xi32>) -> tensor<?x?x4xf32>
    return %8 : tensor<?x?x4xf32>
  }
}

// -----

// dynamic_update_slice (a KV cache write): prim.update_slice at the offsets' index values.
// CHECK-LABEL: module @jit_dynamic_update_slice
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: %[[P:.*]] = arith.index_cast %{{.*}} : i32 to index
// CHECK: "prim.update_slice"(%arg0, %arg1, %[[C0]], %[[P]]) : (tensor<?x16xf32>, tensor<?x?xf32>, index, index) -> tensor<?x16xf32>
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 2 of 2 StableHLO ops (0 composites); left: none
module @jit_dynamic_update_slice attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<?x16xf32>, %arg1: tensor<?x?xf32>, %arg2: tensor<i32>) -> (tensor<?x16xf32> {jax.result_info = "result"}) {
    %c = stablehlo.constant dense<0> : tensor<i32>
    %0 = stablehlo.dynamic_update_slice %arg0, %arg1, %c, %arg2 : (tensor<?x16xf32>, tensor<?x?xf32>, tensor<i32>, tensor<i32>) -> tensor<?x16xf32>
    return %0 : tensor<?x16xf32>
  }
}

// -----

// Dimension variables bound to the inputs (what sw.jax.jit and sw.jax.export do): the
// sizes are the inputs' tensor.dim.
// CHECK-LABEL: module @jit_bound_dims
// CHECK: %[[D:.*]] = tensor.dim %arg0, %{{.*}} : tensor<?x8xf32>
// CHECK: %[[TWO:.*]] = "prim.broadcast"(%{{.*}}, %[[D]]) {dims = array<i64>} : (tensor<f32>, index) -> tensor<?x8xf32>
// CHECK: "prim.map"(%arg0, %[[TWO]]) {fn = "mul"}
// CHECK-NOT: stablehlo.
// STATS: stablehlo-to-nn: raised 6 of 6 StableHLO ops (0 composites); left: none
module @jit_bound_dims attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%arg0: tensor<?x8xf32>) -> (tensor<?x8xf32> {jax.result_info = "result"}) {
    %c0 = arith.constant 0 : index
    %d = tensor.dim %arg0, %c0 : tensor<?x8xf32>
    %di = arith.index_cast %d : index to i32
    %b = tensor.from_elements %di : tensor<i32>
    %cst = stablehlo.constant dense<2.000000e+00> : tensor<f32>
    %1 = stablehlo.reshape %b : (tensor<i32>) -> tensor<1xi32>
    %c_0 = stablehlo.constant dense<8> : tensor<1xi32>
    %2 = stablehlo.concatenate %1, %c_0, dim = 0 : (tensor<1xi32>, tensor<1xi32>) -> tensor<2xi32>
    %3 = stablehlo.dynamic_broadcast_in_dim %cst, %2, dims = [] : (tensor<f32>, tensor<2xi32>) -> tensor<?x8xf32>
    %4 = stablehlo.multiply %arg0, %3 : tensor<?x8xf32>
    return %4 : tensor<?x8xf32>
  }
}
