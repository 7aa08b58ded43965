// RUN: stepwell-opt %s -p linalg-vectorize | FileCheck %s
// RUN: stepwell-opt %s -p 'linalg-vectorize{target=cpu-aarch64}' | FileCheck %s --check-prefix=NEON
// RUN: stepwell-opt %s -p 'linalg-vectorize{tile-sizes=4,64,32 ops=matmul}' | FileCheck %s --check-prefix=TILES

// A matmul becomes three scf.for loops around one vector.contract on a tile.
// CHECK-LABEL: func.func @matmul
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.for
// CHECK-COUNT-3: vector.transfer_read
// CHECK: vector.contract
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: vector.transfer_write
// CHECK-NOT: linalg.matmul
// NEON-LABEL: func.func @matmul
// NEON-DAG: %[[C8:.+]] = arith.constant 8 : index
// NEON-DAG: %[[C4:.+]] = arith.constant 4 : index
// NEON: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %[[C8]]
// NEON: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %[[C8]]
// NEON: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %[[C4]]
// NEON: vector.contract {{.+}} : vector<8x4xf32>, vector<4x8xf32> into vector<8x8xf32>
// TILES-LABEL: func.func @matmul
// TILES-DAG: %[[C4:.+]] = arith.constant 4 : index
// TILES-DAG: %[[C64:.+]] = arith.constant 64 : index
// TILES-DAG: %[[C32:.+]] = arith.constant 32 : index
// TILES: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %[[C4]]
// TILES: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %[[C64]]
// TILES: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %[[C32]]
// TILES: vector.contract {{.+}} : vector<4x32xf32>, vector<32x64xf32> into vector<4x64xf32>
func.func @matmul(%a: tensor<64x128xf32>, %b: tensor<128x256xf32>, %c: tensor<64x256xf32>) -> tensor<64x256xf32> {
  %0 = linalg.matmul ins(%a, %b : tensor<64x128xf32>, tensor<128x256xf32>) outs(%c : tensor<64x256xf32>) -> tensor<64x256xf32>
  return %0 : tensor<64x256xf32>
}

// An elementwise generic becomes vector arithmetic on tiles; `ops=matmul` leaves it alone.
// CHECK-LABEL: func.func @add_exp
// CHECK: scf.for
// CHECK: scf.for
// CHECK: %[[X:.+]] = vector.transfer_read
// CHECK: %[[Y:.+]] = vector.transfer_read
// CHECK: %[[S:.+]] = arith.addf %[[X]], %[[Y]] : vector<
// CHECK: math.exp %[[S]] : vector<
// CHECK: vector.transfer_write
// CHECK-NOT: linalg.generic
// NEON-LABEL: func.func @add_exp
// NEON: arith.addf {{.+}} : vector<8x4xf32>
// NEON: math.exp {{.+}} : vector<8x4xf32>
// TILES-LABEL: func.func @add_exp
// TILES-NOT: scf.for
// TILES: linalg.generic
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @add_exp(%x: tensor<32x64xf32>, %y: tensor<32x64xf32>) -> tensor<32x64xf32> {
  %e = tensor.empty() : tensor<32x64xf32>
  %0 = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %y : tensor<32x64xf32>, tensor<32x64xf32>) outs(%e : tensor<32x64xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    %r = math.exp %s : f32
    linalg.yield %r : f32
  } -> tensor<32x64xf32>
  return %0 : tensor<32x64xf32>
}

// A row sum becomes a vector.multi_reduction per tile.
// CHECK-LABEL: func.func @row_sum
// CHECK: scf.for
// CHECK: vector.multi_reduction <add>
// CHECK-NOT: linalg.reduce
func.func @row_sum(%x: tensor<32x64xf32>, %acc: tensor<32xf32>) -> tensor<32xf32> {
  %0 = linalg.reduce ins(%x : tensor<32x64xf32>) outs(%acc : tensor<32xf32>) dimensions = [1]
    (%in: f32, %a: f32) {
      %s = arith.addf %in, %a : f32
      linalg.yield %s : f32
    }
  return %0 : tensor<32xf32>
}

// 50 columns in tiles of 8: the loop is peeled into 6 whole tiles and one static
// remainder tile of 2 columns (10 rows: tiles of 5, 30 = 15 tiles of 2, both divide).
// NEON-LABEL: func.func @ragged
// NEON-DAG: %[[C48:.+]] = arith.constant 48 : index
// NEON: scf.for %{{.+}} = %{{.+}} to %[[C48]] step
// NEON: vector.contract {{.+}} : vector<5x2xf32>, vector<2x8xf32> into vector<5x8xf32>
// NEON: tensor.extract_slice %{{.+}}[%{{.+}}, 48] [2, 2]
// NEON: vector.contract {{.+}} : vector<5x2xf32>, vector<2x2xf32> into vector<5x2xf32>
// NEON-NOT: vector.mask
func.func @ragged(%a: tensor<10x30xf32>, %b: tensor<30x50xf32>, %c: tensor<10x50xf32>) -> tensor<10x50xf32> {
  %0 = linalg.matmul ins(%a, %b : tensor<10x30xf32>, tensor<30x50xf32>) outs(%c : tensor<10x50xf32>) -> tensor<10x50xf32>
  return %0 : tensor<10x50xf32>
}

// What the vectorizer cannot do stays as it is: the rest of the module still is vectorized.
// CHECK-LABEL: func.func @softmax
// CHECK: linalg.softmax
func.func @softmax(%x: tensor<32x64xf32>) -> tensor<32x64xf32> {
  %e = tensor.empty() : tensor<32x64xf32>
  %0 = linalg.softmax dimension(1) ins(%x : tensor<32x64xf32>) outs(%e : tensor<32x64xf32>) -> tensor<32x64xf32>
  return %0 : tensor<32x64xf32>
}

// CHECK-LABEL: func.func @conv3d
// CHECK: linalg.conv_3d_ndhwc_dhwcf
func.func @conv3d(%x: tensor<1x8x8x8x4xf32>, %w: tensor<3x3x3x4x8xf32>, %o: tensor<1x6x6x6x8xf32>) -> tensor<1x6x6x6x8xf32> {
  %0 = linalg.conv_3d_ndhwc_dhwcf {dilations = dense<1> : tensor<3xi64>, strides = dense<1> : tensor<3xi64>} ins(%x, %w : tensor<1x8x8x8x4xf32>, tensor<3x3x3x4x8xf32>) outs(%o : tensor<1x6x6x6x8xf32>) -> tensor<1x6x6x6x8xf32>
  return %0 : tensor<1x6x6x6x8xf32>
}

// A 2-D convolution is tiled to one output row, decomposed to 1-D and vectorized.
// CHECK-LABEL: func.func @conv2d
// CHECK: scf.for
// CHECK: vector.contract
// CHECK-NOT: linalg.conv
func.func @conv2d(%x: tensor<1x16x16x8xf32>, %w: tensor<3x3x8x16xf32>, %o: tensor<1x14x14x16xf32>) -> tensor<1x14x14x16xf32> {
  %0 = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w : tensor<1x16x16x8xf32>, tensor<3x3x8x16xf32>) outs(%o : tensor<1x14x14x16xf32>) -> tensor<1x14x14x16xf32>
  return %0 : tensor<1x14x14x16xf32>
}
