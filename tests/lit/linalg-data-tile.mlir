// RUN: stepwell-opt %s --split-input-file -p 'linalg-data-tile{inner-tiles=8,8,1 workgroup=32,64 min-flops=0 threads=1}' | FileCheck %s
// RUN: stepwell-opt %s --split-input-file -p 'linalg-data-tile{inner-tiles=8,8,1 workgroup=0,0 min-flops=100000 threads=1}' | FileCheck %s --check-prefix=IREE

// A matmul with a zero accumulator: A packed into 8x1 tiles, B transposed into 8x1 tiles,
// the zero fill made in the packed layout, linalg.mmt4d with a distribution of 32x64
// elements (4x8 tiles of 8x8) per workgroup, the result unpacked.
// CHECK: #[[CONFIG:.+]] = #iree_cpu.lowering_config<distribution = [4, 8, 0, 0, 0, 0], vector_common_parallel = [1, 1, 0, 8, 8, 0], vector_reduction = [0, 0, 1, 0, 0, 1]>
// CHECK: #[[TRANSLATION:.+]] = #iree_codegen.translation_info<pipeline = #iree_cpu.pipeline<Mmt4dTilingExpert>>
// CHECK: #[[INFO:.+]] = #iree_codegen.compilation_info<lowering_config = #[[CONFIG]], translation_info = #[[TRANSLATION]]>
// CHECK-LABEL: func.func @matmul
// CHECK: %[[PA:.+]] = linalg.pack %arg0 outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [8, 1] into %{{.+}} : tensor<64x32xf32> -> tensor<8x32x8x1xf32>
// CHECK: %[[PB:.+]] = linalg.pack %arg1 outer_dims_perm = [1, 0] inner_dims_pos = [1, 0] inner_tiles = [8, 1] into %{{.+}} : tensor<32x128xf32> -> tensor<16x32x8x1xf32>
// CHECK: %[[ACC:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<8x16x8x8xf32>)
// CHECK: %[[MM:.+]] = linalg.mmt4d {compilation_info = #[[INFO]]} ins(%[[PA]], %[[PB]] : tensor<8x32x8x1xf32>, tensor<16x32x8x1xf32>) outs(%[[ACC]] : tensor<8x16x8x8xf32>)
// CHECK: %[[R:.+]] = linalg.unpack %[[MM]] outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [8, 8] into %{{.+}} : tensor<8x16x8x8xf32> -> tensor<64x128xf32>
// CHECK: return %[[R]]
// CHECK-NOT: linalg.matmul
// Without a workgroup size the distribution is IREE's: no compilation_info.
// IREE-LABEL: func.func @matmul
// IREE-NOT: compilation_info
// IREE: linalg.mmt4d ins
func.func @matmul(%a: tensor<64x32xf32>, %b: tensor<32x128xf32>) -> tensor<64x128xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<64x128xf32>
  %acc = linalg.fill ins(%z : f32) outs(%e : tensor<64x128xf32>) -> tensor<64x128xf32>
  %r = linalg.matmul ins(%a, %b : tensor<64x32xf32>, tensor<32x128xf32>) outs(%acc : tensor<64x128xf32>) -> tensor<64x128xf32>
  return %r : tensor<64x128xf32>
}

// -----

// A batched matmul becomes linalg.batch_mmt4d; the batch loop is distributed one by one.
// CHECK: #[[CONFIG:.+]] = #iree_cpu.lowering_config<distribution = [1, 2, 4, 0, 0, 0, 0], vector_common_parallel = [1, 1, 1, 0, 8, 8, 0], vector_reduction = [0, 0, 0, 1, 0, 0, 1]>
// CHECK-LABEL: func.func @batch
// CHECK: linalg.pack %arg0 outer_dims_perm = [0, 1, 2] inner_dims_pos = [1, 2] inner_tiles = [8, 1] into %{{.+}} : tensor<2x16x8xf32> -> tensor<2x2x8x8x1xf32>
// CHECK: linalg.pack %arg1 outer_dims_perm = [0, 2, 1] inner_dims_pos = [2, 1] inner_tiles = [8, 1] into %{{.+}} : tensor<2x8x32xf32> -> tensor<2x4x8x8x1xf32>
// CHECK: linalg.batch_mmt4d {compilation_info = #{{.+}}} ins(%{{.+}}, %{{.+}} : tensor<2x2x8x8x1xf32>, tensor<2x4x8x8x1xf32>) outs(%{{.+}} : tensor<2x2x4x8x8xf32>)
// CHECK: linalg.unpack %{{.+}} outer_dims_perm = [0, 1, 2] inner_dims_pos = [1, 2] inner_tiles = [8, 8] into %{{.+}} : tensor<2x2x4x8x8xf32> -> tensor<2x16x32xf32>
func.func @batch(%a: tensor<2x16x8xf32>, %b: tensor<2x8x32xf32>) -> tensor<2x16x32xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x16x32xf32>
  %acc = linalg.fill ins(%z : f32) outs(%e : tensor<2x16x32xf32>) -> tensor<2x16x32xf32>
  %r = linalg.batch_matmul ins(%a, %b : tensor<2x16x8xf32>, tensor<2x8x32xf32>) outs(%acc : tensor<2x16x32xf32>) -> tensor<2x16x32xf32>
  return %r : tensor<2x16x32xf32>
}

// -----

// A generic contraction with B transposed (mk,nk->mn) and sizes the tiles do not
// divide: B is already n-major (outer_dims_perm [0, 1]), the partial tiles are padded
// with zeros, an accumulator that is not a fill is packed too; the distribution is
// halved to leave two workgroups for the one thread.
// CHECK: #[[CONFIG:.+]] = #iree_cpu.lowering_config<distribution = [1, 3, 0, 0, 0, 0],
// CHECK-LABEL: func.func @transposed
// CHECK: linalg.pack %arg0 padding_value(%{{.+}} : f32) outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [8, 1] into %{{.+}} : tensor<20x12xf32> -> tensor<3x12x8x1xf32>
// CHECK: linalg.pack %arg1 outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [8, 1] into %{{.+}} : tensor<24x12xf32> -> tensor<3x12x8x1xf32>
// CHECK: linalg.pack %arg2 padding_value(%{{.+}} : f32) outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [8, 8] into %{{.+}} : tensor<20x24xf32> -> tensor<3x3x8x8xf32>
// CHECK: linalg.mmt4d
// CHECK: linalg.unpack %{{.+}} into %{{.+}} : tensor<3x3x8x8xf32> -> tensor<20x24xf32>
#lhs = affine_map<(m, n, k) -> (m, k)>
#rhs = affine_map<(m, n, k) -> (n, k)>
#out = affine_map<(m, n, k) -> (m, n)>
func.func @transposed(%a: tensor<20x12xf32>, %b: tensor<24x12xf32>, %acc: tensor<20x24xf32>) -> tensor<20x24xf32> {
  %r = linalg.generic {indexing_maps = [#lhs, #rhs, #out], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : tensor<20x12xf32>, tensor<24x12xf32>) outs(%acc : tensor<20x24xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<20x24xf32>
  return %r : tensor<20x24xf32>
}

// -----

// The tuning database's hints: stepwell.data_tile = false leaves an op to IREE; a
// dictionary gives the op its distribution and inner tile.
// CHECK: #[[CONFIG:.+]] = #iree_cpu.lowering_config<distribution = [2, 1, 0, 0, 0, 0], vector_common_parallel = [1, 1, 0, 4, 8, 0], vector_reduction = [0, 0, 1, 0, 0, 1]>
// CHECK-LABEL: func.func @hints
// CHECK: %[[KEPT:.+]] = linalg.matmul {stepwell.data_tile = false}
// CHECK: linalg.pack %arg0 outer_dims_perm = [0, 1] inner_dims_pos = [0, 1] inner_tiles = [4, 1] into %{{.+}} : tensor<64x32xf32> -> tensor<16x32x4x1xf32>
// CHECK: linalg.mmt4d {compilation_info = #{{.+}}} ins(%{{.+}}, %{{.+}} : tensor<16x32x4x1xf32>, tensor<16x32x8x1xf32>)
// CHECK: return %[[KEPT]], %{{.+}}
func.func @hints(%a: tensor<64x32xf32>, %b: tensor<32x128xf32>, %acc: tensor<64x128xf32>) -> (tensor<64x128xf32>, tensor<64x128xf32>) {
  %r0 = linalg.matmul {stepwell.data_tile = false} ins(%a, %b : tensor<64x32xf32>, tensor<32x128xf32>) outs(%acc : tensor<64x128xf32>) -> tensor<64x128xf32>
  %r1 = linalg.matmul {stepwell.data_tile = {distribution = array<i64: 2, 1>, inner_tiles = array<i64: 4, 8, 1>}} ins(%a, %b : tensor<64x32xf32>, tensor<32x128xf32>) outs(%acc : tensor<64x128xf32>) -> tensor<64x128xf32>
  return %r0, %r1 : tensor<64x128xf32>, tensor<64x128xf32>
}

// -----

// Contractions smaller than min-flops or with dynamic sizes are left to IREE.
// IREE-LABEL: func.func @left_alone
// IREE: linalg.matmul ins(%arg0, %arg1 : tensor<8x8xf32>, tensor<8x8xf32>)
// IREE: linalg.matmul ins(%arg3, %arg4 : tensor<?x512xf32>, tensor<512x512xf32>)
// IREE-NOT: linalg.mmt4d
func.func @left_alone(%a: tensor<8x8xf32>, %b: tensor<8x8xf32>, %acc: tensor<8x8xf32>,
                      %x: tensor<?x512xf32>, %w: tensor<512x512xf32>, %y: tensor<?x512xf32>) -> (tensor<8x8xf32>, tensor<?x512xf32>) {
  %r0 = linalg.matmul ins(%a, %b : tensor<8x8xf32>, tensor<8x8xf32>) outs(%acc : tensor<8x8xf32>) -> tensor<8x8xf32>
  %r1 = linalg.matmul ins(%x, %w : tensor<?x512xf32>, tensor<512x512xf32>) outs(%y : tensor<?x512xf32>) -> tensor<?x512xf32>
  return %r0, %r1 : tensor<8x8xf32>, tensor<?x512xf32>
}

// -----

// Narrow contractions (fewer rows or columns than the inner tile) are left to IREE.
// CHECK-LABEL: func.func @narrow
// CHECK: linalg.matmul ins(%arg0, %arg1 : tensor<4x64xf32>, tensor<64x256xf32>)
// CHECK-NOT: linalg.mmt4d
func.func @narrow(%x: tensor<4x64xf32>, %w: tensor<64x256xf32>, %acc: tensor<4x256xf32>) -> tensor<4x256xf32> {
  %r = linalg.matmul ins(%x, %w : tensor<4x64xf32>, tensor<64x256xf32>) outs(%acc : tensor<4x256xf32>) -> tensor<4x256xf32>
  return %r : tensor<4x256xf32>
}
