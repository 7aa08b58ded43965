// RUN: stepwell-opt %s --split-input-file --verify-diagnostics -p prim-to-linalg | FileCheck %s
// RUN: not stepwell-opt %s --split-input-file -p prim-to-linalg 2>&1 | FileCheck %s --check-prefix=ERR
// RUN: stepwell-opt %s --split-input-file --verify-diagnostics -p 'prim-to-linalg{attention=true}' | FileCheck %s --check-prefix=ATTN
// RUN: stepwell-opt %s --split-input-file --verify-diagnostics -p 'prim-to-linalg{widen=true}' | FileCheck %s --check-prefix=WIDEN

// ERR: prim-to-linalg.mlir:{{[0-9]+}}:8: error: cannot lower 'nn.relu' to linalg: run nn-to-prim first
// ERR: prim-to-linalg.mlir:{{[0-9]+}}:8: error: 'prim.broadcast' dynamic added dimension 1 of tensor<4x?xf32> needs its size
// ERR-NOT: Traceback

// CHECK-LABEL: func.func @matmul
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[EMPTY:.*]] = tensor.empty() : tensor<4x16xf32>
// CHECK: %[[FILL:.*]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[EMPTY]] : tensor<4x16xf32>)
// CHECK: linalg.matmul ins(%arg0, %arg1 : tensor<4x8xf32>, tensor<8x16xf32>) outs(%[[FILL]] : tensor<4x16xf32>)
// CHECK-NOT: prim.
func.func @matmul(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %0 = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

// An f16 contraction accumulates in f32 and rounds once. With widen=true (the x86
// cpu targets) its operands are converted to f32 first, behind util.optimization_barrier.
// CHECK-LABEL: func.func @matmul_half
// CHECK-NOT: util.optimization_barrier
// CHECK: linalg.matmul ins(%arg0, %arg1 : tensor<4x8xf16>, tensor<8x16xf16>) outs({{.*}} : tensor<4x16xf32>)
// CHECK: arith.truncf {{.*}} : f32 to f16
// WIDEN-LABEL: func.func @matmul_half
// WIDEN: arith.extf {{.*}} : f16 to f32
// WIDEN: %[[A:.*]] = util.optimization_barrier {{.*}} : tensor<4x8xf32>
// WIDEN: arith.extf {{.*}} : f16 to f32
// WIDEN: %[[B:.*]] = util.optimization_barrier {{.*}} : tensor<8x16xf32>
// WIDEN: linalg.matmul ins(%[[A]], %[[B]] : tensor<4x8xf32>, tensor<8x16xf32>) outs({{.*}} : tensor<4x16xf32>)
// WIDEN: arith.truncf {{.*}} : f32 to f16
// WIDEN-LABEL: func.func @matmul_f32_not_widened
// WIDEN-NOT: util.optimization_barrier
// WIDEN: linalg.matmul ins(%arg0, %arg1 : tensor<4x8xf32>, tensor<8x16xf32>)
func.func @matmul_half(%a: tensor<4x8xf16>, %b: tensor<8x16xf16>) -> tensor<4x16xf16> {
  %0 = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf16>, tensor<8x16xf16>) -> tensor<4x16xf16>
  return %0 : tensor<4x16xf16>
}

// -----

func.func @matmul_f32_not_widened(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %0 = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

// A constant (here reshaped) weight is not widened: IREE would store it as f32.
// WIDEN-LABEL: func.func @matmul_constant_weight_not_widened
// WIDEN-NOT: util.optimization_barrier
// WIDEN: linalg.matmul ins(%arg0, %{{.*}} : tensor<4x8xf16>, tensor<8x16xf16>)
func.func @matmul_constant_weight_not_widened(%a: tensor<4x8xf16>) -> tensor<4x16xf16> {
  %w = arith.constant dense<0.5> : tensor<128xf16>
  %b = "prim.reshape"(%w) : (tensor<128xf16>) -> tensor<8x16xf16>
  %0 = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xf16>, tensor<8x16xf16>) -> tensor<4x16xf16>
  return %0 : tensor<4x16xf16>
}

// -----

// CHECK-LABEL: func.func @batch_matmul
// CHECK: linalg.batch_matmul ins(%arg0, %arg1 : tensor<2x4x8xf32>, tensor<2x8x16xf32>) outs({{.*}} : tensor<2x4x16xf32>)
func.func @batch_matmul(%a: tensor<2x4x8xf32>, %b: tensor<2x8x16xf32>) -> tensor<2x4x16xf32> {
  %0 = "prim.contract"(%a, %b) {spec = "bmk,bkn->bmn"} : (tensor<2x4x8xf32>, tensor<2x8x16xf32>) -> tensor<2x4x16xf32>
  return %0 : tensor<2x4x16xf32>
}

// -----

// Other specs (here Q K^T with two batch dims) become a generic contraction.
// CHECK-DAG: #[[Q:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>
// CHECK-DAG: #[[K:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d4)>
// CHECK-DAG: #[[S:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @contract_generic
// CHECK: linalg.generic {indexing_maps = [#[[Q]], #[[K]], #[[S]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%arg0, %arg1 : tensor<2x3x4x8xf32>, tensor<2x3x5x8xf32>)
// CHECK: ^bb0(%[[A:.*]]: f32, %[[B:.*]]: f32, %[[ACC:.*]]: f32):
// CHECK: %[[M:.*]] = arith.mulf %[[A]], %[[B]] : f32
// CHECK: %[[R:.*]] = arith.addf %[[ACC]], %[[M]] : f32
// CHECK: linalg.yield %[[R]] : f32
func.func @contract_generic(%q: tensor<2x3x4x8xf32>, %k: tensor<2x3x5x8xf32>) -> tensor<2x3x4x5xf32> {
  %0 = "prim.contract"(%q, %k) {spec = "bhqd,bhkd->bhqk"} : (tensor<2x3x4x8xf32>, tensor<2x3x5x8xf32>) -> tensor<2x3x4x5xf32>
  return %0 : tensor<2x3x4x5xf32>
}

// -----

// An i8 x i8 -> i32 generic contraction extends the operands in its body.
// CHECK-LABEL: func.func @contract_i8
// CHECK: linalg.generic
// CHECK: arith.extsi %{{.*}} : i8 to i32
// CHECK: arith.extsi %{{.*}} : i8 to i32
// CHECK: arith.muli
// CHECK: arith.addi
func.func @contract_i8(%a: tensor<8x4xi8>, %b: tensor<8x6xi8>) -> tensor<4x6xi32> {
  %0 = "prim.contract"(%a, %b) {spec = "km,kn->mn"} : (tensor<8x4xi8>, tensor<8x6xi8>) -> tensor<4x6xi32>
  return %0 : tensor<4x6xi32>
}

// -----

// bf16 x bf16 -> f32: linalg.matmul takes the mixed types directly.
// CHECK-LABEL: func.func @contract_mixed
// CHECK: linalg.matmul ins(%arg0, %arg1 : tensor<4x8xbf16>, tensor<8x16xbf16>) outs({{.*}} : tensor<4x16xf32>)
func.func @contract_mixed(%a: tensor<4x8xbf16>, %b: tensor<8x16xbf16>) -> tensor<4x16xf32> {
  %0 = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xbf16>, tensor<8x16xbf16>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

// A bf16 result accumulates in f32 and is rounded once at the end, to nearest even in
// integer ops (IREE 3.13 can lose arith.truncf's rounding to bf16 in a fusion).
// CHECK-LABEL: func.func @contract_bf16
// CHECK: %[[MM:.*]] = linalg.matmul {{.*}} outs({{.*}} : tensor<4x16xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[MM]] : tensor<4x16xf32>) outs({{.*}} : tensor<4x16xbf16>)
// CHECK: arith.bitcast %{{.*}} : f32 to i32
// CHECK: arith.bitcast %{{.*}} : i16 to bf16
func.func @contract_bf16(%a: tensor<4x8xbf16>, %b: tensor<8x16xbf16>) -> tensor<4x16xbf16> {
  %0 = "prim.contract"(%a, %b) {spec = "mk,kn->mn"} : (tensor<4x8xbf16>, tensor<8x16xbf16>) -> tensor<4x16xbf16>
  return %0 : tensor<4x16xbf16>
}

// -----

// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @map
// CHECK: linalg.generic {indexing_maps = [#[[ID]], #[[ID]], #[[ID]]], iterator_types = ["parallel", "parallel"]}
// CHECK: arith.addf
// CHECK: linalg.generic
// CHECK: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK: %[[NEG:.*]] = arith.negf
// CHECK: %[[EXP:.*]] = math.exp %[[NEG]]
// CHECK: %[[DEN:.*]] = arith.addf %[[ONE]], %[[EXP]]
// CHECK: arith.divf %[[ONE]], %[[DEN]]
// CHECK: linalg.generic
// CHECK: arith.cmpf une
// CHECK: linalg.generic
// CHECK: arith.divsi
// CHECK: linalg.generic
// CHECK: arith.cmpi slt
// CHECK: linalg.generic
// CHECK: arith.select %{{.*}}, %{{.*}}, %{{.*}} : f32
// CHECK: linalg.generic
// CHECK: math.erf
// CHECK: linalg.generic
// CHECK: math.powf
// CHECK: linalg.generic
// CHECK: arith.constant -1 : i32
// CHECK: arith.xori
func.func @map(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>, %i: tensor<4x8xi32>, %j: tensor<4x8xi32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xi1>, tensor<4x8xi32>, tensor<4x8xi1>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xi32>) {
  %0 = "prim.map"(%x, %y) {fn = "add"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "prim.map"(%0) {fn = "logistic"} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %2 = "prim.map"(%x, %y) {fn = "ne"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xi1>
  %3 = "prim.map"(%i, %j) {fn = "div"} : (tensor<4x8xi32>, tensor<4x8xi32>) -> tensor<4x8xi32>
  %4 = "prim.map"(%i, %j) {fn = "lt"} : (tensor<4x8xi32>, tensor<4x8xi32>) -> tensor<4x8xi1>
  %5 = "prim.map"(%2, %x, %y) {fn = "select"} : (tensor<4x8xi1>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %6 = "prim.map"(%x) {fn = "erf"} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %7 = "prim.map"(%x, %y) {fn = "pow"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %8 = "prim.map"(%i) {fn = "not"} : (tensor<4x8xi32>) -> tensor<4x8xi32>
  return %0, %1, %2, %3, %4, %5, %6, %7, %8 : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xi1>, tensor<4x8xi32>, tensor<4x8xi1>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xi32>
}

// -----

// Dynamic sizes of the result come from the operand.
// CHECK-LABEL: func.func @map_dynamic
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: %[[D0:.*]] = tensor.dim %arg0, %[[C0]] : tensor<?x8xf32>
// CHECK: %[[E:.*]] = tensor.empty(%[[D0]]) : tensor<?x8xf32>
// CHECK: linalg.generic {{.*}} outs(%[[E]] : tensor<?x8xf32>)
// CHECK: math.exp
func.func @map_dynamic(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %0 = "prim.map"(%x) {fn = "exp"} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}

// -----

// CHECK-LABEL: func.func @reduce
// CHECK: %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: %[[F:.*]] = linalg.fill ins(%[[NINF]] : f32)
// CHECK: linalg.reduce ins(%arg0 : tensor<4x8xf32>) outs(%[[F]] : tensor<4xf32>) dimensions = [1]
// CHECK: arith.maximumf
// CHECK: arith.constant 2147483647 : i32
// CHECK: linalg.reduce ins(%arg1 : tensor<4x8xi32>) outs({{.*}} : tensor<8xi32>) dimensions = [0]
// CHECK: arith.minsi
// A sum to one element over two wide dims is two reduces (IREE 3.13 miscompiles it as
// one when a broadcast product feeds it): the first wide dim goes last.
// CHECK: arith.constant 0.000000e+00 : f32
// CHECK: %[[P:.*]] = linalg.reduce ins(%arg0 : tensor<4x8xf32>) outs({{.*}} : tensor<4xf32>) dimensions = [1]
// CHECK: arith.addf
// CHECK: linalg.reduce ins(%[[P]] : tensor<4xf32>) outs({{.*}} : tensor<f32>) dimensions = [0]
// CHECK: arith.addf
// CHECK: arith.constant 1.000000e+00 : f32
// CHECK: linalg.reduce
// CHECK: arith.mulf
func.func @reduce(%x: tensor<4x8xf32>, %i: tensor<4x8xi32>) -> (tensor<4xf32>, tensor<8xi32>, tensor<f32>, tensor<8xf32>) {
  %0 = "prim.reduce"(%x) {kind = "max", axes = array<i64: 1>} : (tensor<4x8xf32>) -> tensor<4xf32>
  %1 = "prim.reduce"(%i) {kind = "min", axes = array<i64: 0>} : (tensor<4x8xi32>) -> tensor<8xi32>
  %2 = "prim.reduce"(%x) {kind = "sum", axes = array<i64: 1, 0>} : (tensor<4x8xf32>) -> tensor<f32>
  %3 = "prim.reduce"(%x) {kind = "prod", axes = array<i64: -2>} : (tensor<4x8xf32>) -> tensor<8xf32>
  return %0, %1, %2, %3 : tensor<4xf32>, tensor<8xi32>, tensor<f32>, tensor<8xf32>
}

// -----

// prim's dims say where operand dims go; linalg's dimensions are the added ones.
// CHECK-LABEL: func.func @broadcast
// CHECK: %[[E:.*]] = tensor.empty() : tensor<2x8x4xf32>
// CHECK: linalg.broadcast ins(%arg0 : tensor<8xf32>) outs(%[[E]] : tensor<2x8x4xf32>) dimensions = [0, 2]
func.func @broadcast(%x: tensor<8xf32>) -> tensor<2x8x4xf32> {
  %0 = "prim.broadcast"(%x) {dims = array<i64: 1>} : (tensor<8xf32>) -> tensor<2x8x4xf32>
  return %0 : tensor<2x8x4xf32>
}

// -----

// A map reads a broadcast operand through a projected map (the linalg.broadcast is left
// unused, for canonicalize to drop) and a splat constant as a scalar in its body.
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[ROW:.*]] = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: func.func @map_reads_broadcast
// CHECK: linalg.generic {indexing_maps = [#[[ID]], #[[ROW]], #[[ID]]], iterator_types = ["parallel", "parallel"]} ins(%arg0, %arg1 : tensor<4x8xf32>, tensor<4xf32>)
// CHECK: arith.subf
// CHECK: linalg.generic {indexing_maps = [#[[ID]], #[[ID]]]
// CHECK: arith.constant 2.000000e+00 : f32
// CHECK: arith.mulf
func.func @map_reads_broadcast(%x: tensor<4x8xf32>, %m: tensor<4xf32>) -> tensor<4x8xf32> {
  %two = arith.constant dense<2.0> : tensor<4x8xf32>
  %b = "prim.broadcast"(%m) {dims = array<i64: 0>} : (tensor<4xf32>) -> tensor<4x8xf32>
  %d = "prim.map"(%x, %b) {fn = "sub"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %0 = "prim.map"(%d, %two) {fn = "mul"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func.func @transpose
// CHECK: linalg.transpose ins(%arg0 : tensor<2x3x4xf32>) outs({{.*}} : tensor<4x2x3xf32>) permutation = [2, 0, 1]
func.func @transpose(%x: tensor<2x3x4xf32>) -> tensor<4x2x3xf32> {
  %0 = "prim.transpose"(%x) {permutation = array<i64: 2, 0, 1>} : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
  return %0 : tensor<4x2x3xf32>
}

// -----

// A pure collapse or expand is one op; any other reshape collapses to 1-D and expands.
// CHECK-LABEL: func.func @reshape
// CHECK: tensor.collapse_shape %arg0 {{\[\[}}0, 1], [2]] : tensor<2x3x4xf32> into tensor<6x4xf32>
// CHECK: tensor.expand_shape %arg1 {{\[\[}}0, 1], [2]] output_shape [2, 3, 4] : tensor<6x4xf32> into tensor<2x3x4xf32>
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1, 2]] : tensor<2x3x4xf32> into tensor<24xf32>
// CHECK: tensor.expand_shape %[[FLAT]] {{\[\[}}0, 1]] output_shape [4, 6] : tensor<24xf32> into tensor<4x6xf32>
// CHECK: tensor.collapse_shape %arg2 [] : tensor<1x1xf32> into tensor<f32>
func.func @reshape(%x: tensor<2x3x4xf32>, %y: tensor<6x4xf32>, %z: tensor<1x1xf32>) -> (tensor<6x4xf32>, tensor<2x3x4xf32>, tensor<4x6xf32>, tensor<f32>) {
  %0 = "prim.reshape"(%x) : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  %1 = "prim.reshape"(%y) : (tensor<6x4xf32>) -> tensor<2x3x4xf32>
  %2 = "prim.reshape"(%x) : (tensor<2x3x4xf32>) -> tensor<4x6xf32>
  %3 = "prim.reshape"(%z) : (tensor<1x1xf32>) -> tensor<f32>
  return %0, %1, %2, %3 : tensor<6x4xf32>, tensor<2x3x4xf32>, tensor<4x6xf32>, tensor<f32>
}

// -----

// To bf16: nearest even in integer ops (see @contract_bf16), a NaN kept.
// CHECK-LABEL: func.func @cast
// CHECK: arith.bitcast %{{.*}} : f32 to i32
// CHECK: arith.cmpf uno
// CHECK: arith.bitcast %{{.*}} : i16 to bf16
// CHECK: arith.fptosi %{{.*}} : f32 to i32
// CHECK: arith.sitofp %{{.*}} : i32 to f32
// CHECK: arith.cmpi ne, %{{.*}}, %{{.*}} : i32
// CHECK: arith.extui %{{.*}} : i1 to i8
// CHECK: %[[EXT:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK: arith.bitcast %[[EXT]] : f32 to i32
func.func @cast(%x: tensor<4xf32>, %i: tensor<4xi32>, %b: tensor<4xi1>, %h: tensor<4xf16>) -> (tensor<4xbf16>, tensor<4xi32>, tensor<4xf32>, tensor<4xi1>, tensor<4xi8>, tensor<4xbf16>) {
  %0 = "prim.cast"(%x) : (tensor<4xf32>) -> tensor<4xbf16>
  %1 = "prim.cast"(%x) : (tensor<4xf32>) -> tensor<4xi32>
  %2 = "prim.cast"(%i) : (tensor<4xi32>) -> tensor<4xf32>
  %3 = "prim.cast"(%i) : (tensor<4xi32>) -> tensor<4xi1>
  %4 = "prim.cast"(%b) : (tensor<4xi1>) -> tensor<4xi8>
  %5 = "prim.cast"(%h) : (tensor<4xf16>) -> tensor<4xbf16>
  return %0, %1, %2, %3, %4, %5 : tensor<4xbf16>, tensor<4xi32>, tensor<4xf32>, tensor<4xi1>, tensor<4xi8>, tensor<4xbf16>
}

// -----

// CHECK-LABEL: func.func @slice
// CHECK: tensor.extract_slice %arg0[1, 2] [2, 2] [2, 3] : tensor<6x8xf32> to tensor<2x2xf32>
func.func @slice(%x: tensor<6x8xf32>) -> tensor<2x2xf32> {
  %0 = "prim.slice"(%x) {start = array<i64: 1, 2>, limit = array<i64: 5, 8>, stride = array<i64: 2, 3>} : (tensor<6x8xf32>) -> tensor<2x2xf32>
  return %0 : tensor<2x2xf32>
}

// -----

// The f32 pad value becomes a constant of the element type.
// CHECK-LABEL: func.func @pad
// CHECK: %[[V:.*]] = arith.constant 1.500000e+00 : f32
// CHECK: tensor.pad %arg0 low[1, 0] high[2, 3]
// CHECK: tensor.yield %[[V]] : f32
// CHECK: } : tensor<2x3xf32> to tensor<5x6xf32>
// CHECK: %[[I:.*]] = arith.constant 2 : i32
// CHECK: tensor.pad %arg1 low[0, 1] high[0, 0]
// CHECK: tensor.yield %[[I]] : i32
func.func @pad(%x: tensor<2x3xf32>, %i: tensor<2x3xi32>) -> (tensor<5x6xf32>, tensor<2x4xi32>) {
  %0 = "prim.pad"(%x) {low = array<i64: 1, 0>, high = array<i64: 2, 3>, value = 1.5 : f32} : (tensor<2x3xf32>) -> tensor<5x6xf32>
  %1 = "prim.pad"(%i) {low = array<i64: 0, 1>, high = array<i64: 0, 0>, value = 2.0 : f32} : (tensor<2x3xi32>) -> tensor<2x4xi32>
  return %0, %1 : tensor<5x6xf32>, tensor<2x4xi32>
}

// -----

// CHECK-LABEL: func.func @concat
// CHECK: tensor.concat dim(1) %arg0, %arg1 : (tensor<2x3xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
func.func @concat(%a: tensor<2x3xf32>, %b: tensor<2x1xf32>) -> tensor<2x4xf32> {
  %0 = "prim.concat"(%a, %b) {axis = -1 : i64} : (tensor<2x3xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// An embedding lookup: each result element reads the table at the clamped id.
// CHECK-DAG: #[[IDS:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[OUT:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @gather
// CHECK: %[[LAST:.*]] = arith.subi
// CHECK: %[[ZERO:.*]] = arith.constant 0 : index
// CHECK: linalg.generic {indexing_maps = [#[[IDS]], #[[OUT]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg1 : tensor<2x7xi32>)
// CHECK: ^bb0(%[[ID:.*]]: i32, %{{.*}}: f32):
// CHECK: %[[I:.*]] = arith.index_cast %[[ID]] : i32 to index
// CHECK: %[[LO:.*]] = arith.maxsi %[[I]], %[[ZERO]] : index
// CHECK: %[[C:.*]] = arith.minsi %[[LO]], %[[LAST]] : index
// CHECK: %[[J:.*]] = linalg.index 2 : index
// CHECK: tensor.extract %arg0[%[[C]], %[[J]]] : tensor<100x16xf32>
func.func @gather(%t: tensor<100x16xf32>, %ids: tensor<2x7xi32>) -> tensor<2x7x16xf32> {
  %0 = "prim.gather"(%t, %ids) : (tensor<100x16xf32>, tensor<2x7xi32>) -> tensor<2x7x16xf32>
  return %0 : tensor<2x7x16xf32>
}

// -----

// CHECK-LABEL: func.func @iota
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<3x4xf32>)
// CHECK: %[[I:.*]] = linalg.index 1 : index
// CHECK: %[[N:.*]] = arith.index_cast %[[I]] : index to i64
// CHECK: arith.sitofp %[[N]] : i64 to f32
func.func @iota() -> tensor<3x4xf32> {
  %0 = "prim.iota"() {dim = 1 : i64} : () -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// Padding is a tensor.pad in front of the named convolution.
// CHECK-LABEL: func.func @conv
// CHECK: %[[P:.*]] = tensor.pad %arg0 low[0, 1, 1, 0] high[0, 0, 0, 0]
// CHECK: } : tensor<1x8x8x4xf32> to tensor<1x9x9x4xf32>
// CHECK: linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<2> : tensor<2xi64>} ins(%[[P]], %arg1 : tensor<1x9x9x4xf32>, tensor<3x3x4x8xf32>) outs({{.*}} : tensor<1x4x4x8xf32>)
func.func @conv(%x: tensor<1x8x8x4xf32>, %w: tensor<3x3x4x8xf32>) -> tensor<1x4x4x8xf32> {
  %0 = "prim.conv"(%x, %w) {strides = array<i64: 2, 2>, padding = array<i64: 1, 0, 1, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x4xf32>, tensor<3x3x4x8xf32>) -> tensor<1x4x4x8xf32>
  return %0 : tensor<1x4x4x8xf32>
}

// -----

// CHECK-LABEL: func.func @conv_dilated
// CHECK-NOT: tensor.pad
// CHECK: linalg.conv_2d_nhwc_hwcf {dilations = dense<[2, 1]> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
func.func @conv_dilated(%x: tensor<1x9x8x2xf32>, %w: tensor<3x3x2x4xf32>) -> tensor<1x5x6x4xf32> {
  %0 = "prim.conv"(%x, %w) {dilation = array<i64: 2, 1>} : (tensor<1x9x8x2xf32>, tensor<3x3x2x4xf32>) -> tensor<1x5x6x4xf32>
  return %0 : tensor<1x5x6x4xf32>
}

// -----

// groups == channels: the HWIO weight [3, 3, 1, C] is the HWC filter.
// CHECK-LABEL: func.func @conv_depthwise
// CHECK: %[[W:.*]] = tensor.collapse_shape %arg1 {{\[\[}}0], [1], [2, 3]] : tensor<3x3x1x4xf32> into tensor<3x3x4xf32>
// CHECK: linalg.depthwise_conv_2d_nhwc_hwc {{.*}} ins(%arg0, %[[W]] : tensor<1x8x8x4xf32>, tensor<3x3x4xf32>) outs({{.*}} : tensor<1x6x6x4xf32>)
func.func @conv_depthwise(%x: tensor<1x8x8x4xf32>, %w: tensor<3x3x1x4xf32>) -> tensor<1x6x6x4xf32> {
  %0 = "prim.conv"(%x, %w) {groups = 4 : i64} : (tensor<1x8x8x4xf32>, tensor<3x3x1x4xf32>) -> tensor<1x6x6x4xf32>
  return %0 : tensor<1x6x6x4xf32>
}

// -----

// A channel multiplier M: the weight [3, 3, 1, C*M] becomes [3, 3, C, M], the output [.., C, M] is collapsed.
// CHECK-LABEL: func.func @conv_depthwise_multiplier
// CHECK: %[[W:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0], [1], [2, 3]] output_shape [3, 3, 4, 2] : tensor<3x3x8xf32> into tensor<3x3x4x2xf32>
// CHECK: %[[C:.*]] = linalg.depthwise_conv_2d_nhwc_hwcm {{.*}} ins(%arg0, %[[W]] : tensor<1x8x8x4xf32>, tensor<3x3x4x2xf32>) outs({{.*}} : tensor<1x6x6x4x2xf32>)
// CHECK: tensor.collapse_shape %[[C]] {{\[\[}}0], [1], [2], [3, 4]] : tensor<1x6x6x4x2xf32> into tensor<1x6x6x8xf32>
func.func @conv_depthwise_multiplier(%x: tensor<1x8x8x4xf32>, %w: tensor<3x3x1x8xf32>) -> tensor<1x6x6x8xf32> {
  %0 = "prim.conv"(%x, %w) {groups = 4 : i64} : (tensor<1x8x8x4xf32>, tensor<3x3x1x8xf32>) -> tensor<1x6x6x8xf32>
  return %0 : tensor<1x6x6x8xf32>
}

// -----

// A strided window that ends before the padded input does (found by the program
// fuzzer): the unread high padding is dropped, then unread input rows, so the input
// ends with the last window (IREE 3.13 refuses a strided conv that reads short of it).
// CHECK-LABEL: func.func @conv_unread_rows
// CHECK: %[[S:.*]] = tensor.extract_slice %arg0[0, 0, 0, 0] [1, 7, 8, 2] [1, 1, 1, 1] : tensor<1x8x8x2xf32> to tensor<1x7x8x2xf32>
// CHECK: tensor.pad %[[S]] low[0, 0, 1, 0] high[0, 0, 0, 0]
// CHECK: } : tensor<1x7x8x2xf32> to tensor<1x7x9x2xf32>
// CHECK: linalg.conv_2d_nhwc_hwcf {{.*}} outs({{.*}} : tensor<1x3x4x4xf32>)
func.func @conv_unread_rows(%x: tensor<1x8x8x2xf32>, %w: tensor<3x3x2x4xf32>) -> tensor<1x3x4x4xf32> {
  %0 = "prim.conv"(%x, %w) {strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 1, 1>} : (tensor<1x8x8x2xf32>, tensor<3x3x2x4xf32>) -> tensor<1x3x4x4xf32>
  return %0 : tensor<1x3x4x4xf32>
}

// -----

// The same with a dynamic batch (a ResNet's 1x1 stride-2 shortcut): the slice keeps the
// batch's run-time size, and the output's batch is the input's.
// CHECK-LABEL: func.func @conv_unread_rows_dynamic_batch
// CHECK: %[[N:.*]] = tensor.dim %arg0, %{{.*}} : tensor<?x16x16x8xf32>
// CHECK: tensor.extract_slice %arg0[0, 0, 0, 0] [%[[N]], 15, 15, 8] [1, 1, 1, 1] : tensor<?x16x16x8xf32> to tensor<?x15x15x8xf32>
// CHECK: linalg.conv_2d_nhwc_hwcf {{.*}} -> tensor<?x8x8x4xf32>
func.func @conv_unread_rows_dynamic_batch(%x: tensor<?x16x16x8xf32>, %w: tensor<1x1x8x4xf32>) -> tensor<?x8x8x4xf32> {
  %0 = "prim.conv"(%x, %w) {strides = array<i64: 2, 2>} : (tensor<?x16x16x8xf32>, tensor<1x1x8x4xf32>) -> tensor<?x8x8x4xf32>
  return %0 : tensor<?x8x8x4xf32>
}

// -----

// 1 < groups < channels: a generic over [n, oh, ow, g, f] x [kh, kw, c] on group-split tensors.
// CHECK-DAG: #[[X:.*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6, d7) -> (d0, d1 + d5 * 2, d2 + d6, d3, d7)>
// CHECK-DAG: #[[W:.*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6, d7) -> (d5, d6, d7, d3, d4)>
// CHECK-DAG: #[[O:.*]] = affine_map<(d0, d1, d2, d3, d4, d5, d6, d7) -> (d0, d1, d2, d3, d4)>
// CHECK-LABEL: func.func @conv_grouped
// CHECK: tensor.expand_shape %arg0 {{\[\[}}0], [1], [2], [3, 4]] output_shape [1, 8, 8, 2, 2]
// CHECK: tensor.expand_shape %arg1 {{\[\[}}0], [1], [2], [3, 4]] output_shape [3, 3, 2, 2, 3]
// CHECK: %[[G:.*]] = linalg.generic {indexing_maps = [#[[X]], #[[W]], #[[O]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]}
// CHECK: tensor.collapse_shape %[[G]] {{\[\[}}0], [1], [2], [3, 4]] : tensor<1x4x6x2x3xf32> into tensor<1x4x6x6xf32>
func.func @conv_grouped(%x: tensor<1x8x8x4xf32>, %w: tensor<3x3x2x6xf32>) -> tensor<1x4x6x6xf32> {
  %0 = "prim.conv"(%x, %w) {groups = 2 : i64, dilation = array<i64: 2, 1>} : (tensor<1x8x8x4xf32>, tensor<3x3x2x6xf32>) -> tensor<1x4x6x6xf32>
  return %0 : tensor<1x4x6x6xf32>
}

// -----

// Ops that do nothing forward their operand (through tensor.cast when only static sizes
// differ, after a run-time check that the dynamic size is the static one).
// CHECK-LABEL: func.func @identities
// CHECK: %[[D:.*]] = tensor.dim %arg0, %{{.*}} : tensor<?x4xf32>
// CHECK: %[[OK:.*]] = arith.cmpi eq, %[[D]], %{{.*}} : index
// CHECK: cf.assert %[[OK]], "stepwell: 'prim.broadcast' operand: dimension 0 is not 3 at run time
// CHECK: %[[C:.*]] = tensor.cast %arg0 : tensor<?x4xf32> to tensor<3x4xf32>
// CHECK-NEXT: return %arg0, %arg0, %[[C]]
func.func @identities(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>, tensor<3x4xf32>) {
  %0 = "prim.transpose"(%x) {permutation = array<i64: 0, 1>} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %1 = "prim.reduce"(%0) {kind = "sum", axes = array<i64>} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %2 = "prim.broadcast"(%1) {dims = array<i64: 0, 1>} : (tensor<?x4xf32>) -> tensor<3x4xf32>
  return %0, %1, %2 : tensor<?x4xf32>, tensor<?x4xf32>, tensor<3x4xf32>
}

// -----

// The causal attention chain nn-to-prim emits. By default it lowers op by op; with
// attention=true it becomes one iree_linalg_ext.attention whose mask is additive.
// CHECK-LABEL: func.func @attention
// CHECK-NOT: iree_linalg_ext.attention
// CHECK: linalg.reduce
// CHECK: linalg.reduce
// CHECK-NOT: iree_linalg_ext.attention
// CHECK: return
// ATTN-DAG: #[[Q:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>
// ATTN-DAG: #[[K:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d4, d3)>
// ATTN-DAG: #[[V:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d4, d5)>
// ATTN-DAG: #[[SCALE:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> ()>
// ATTN-DAG: #[[MASK:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d4)>
// ATTN-DAG: #[[OUT:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d5)>
// ATTN-LABEL: func.func @attention
// ATTN: %[[KEEP:.*]] = linalg.broadcast
// ATTN: %[[SCALE_V:.*]] = arith.constant 5.000000e-01 : f32
// ATTN: %[[ADD:.*]] = linalg.generic {{.*}} ins(%[[KEEP]] : tensor<1x2x8x8xi1>) outs({{.*}} : tensor<1x2x8x8xf32>)
// ATTN: arith.select
// ATTN: iree_linalg_ext.attention <indexing_maps = [#[[Q]], #[[K]], #[[V]], #[[SCALE]], #[[MASK]], #[[OUT]]]>
// ATTN-SAME: ins(%arg0, %arg1, %arg2, %[[SCALE_V]], %[[ADD]] : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x16xf32>, f32, tensor<1x2x8x8xf32>)
// ATTN: iree_linalg_ext.yield
// ATTN-NOT: linalg.reduce
// ATTN: return
func.func @attention(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
  %cst = arith.constant dense<-3.40282347E+38> : tensor<1x2x8x8xf32>
  %cst_0 = arith.constant dense<5.000000e-01> : tensor<1x2x8x8xf32>
  %0 = "prim.contract"(%q, %k) {spec = "bhqd,bhkd->bhqk"} : (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x8xf32>
  %1 = "prim.map"(%0, %cst_0) {fn = "mul"} : (tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %2 = "prim.iota"() {dim = 0 : i64} : () -> tensor<8x8xi64>
  %3 = "prim.iota"() {dim = 1 : i64} : () -> tensor<8x8xi64>
  %4 = "prim.map"(%2, %3) {fn = "ge"} : (tensor<8x8xi64>, tensor<8x8xi64>) -> tensor<8x8xi1>
  %5 = "prim.broadcast"(%4) {dims = array<i64: 2, 3>} : (tensor<8x8xi1>) -> tensor<1x2x8x8xi1>
  %6 = "prim.map"(%5, %1, %cst) {fn = "select"} : (tensor<1x2x8x8xi1>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %7 = "prim.reduce"(%6) {axes = array<i64: 3>, kind = "max"} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8xf32>
  %n = "prim.map"(%7) {fn = "neg"} : (tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
  %8 = "prim.broadcast"(%n) {dims = array<i64: 0, 1, 2>} : (tensor<1x2x8xf32>) -> tensor<1x2x8x8xf32>
  %9 = "prim.map"(%6, %8) {fn = "add"} : (tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %10 = "prim.map"(%9) {fn = "exp"} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %11 = "prim.reduce"(%10) {axes = array<i64: 3>, kind = "sum"} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8xf32>
  %12 = "prim.broadcast"(%11) {dims = array<i64: 0, 1, 2>} : (tensor<1x2x8xf32>) -> tensor<1x2x8x8xf32>
  %13 = "prim.map"(%10, %12) {fn = "div"} : (tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %14 = "prim.contract"(%13, %v) {spec = "bhqk,bhkd->bhqd"} : (tensor<1x2x8x8xf32>, tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32>
  return %14 : tensor<1x2x8x16xf32>
}

// -----

// nn ops must be decomposed first: the pass names the op it cannot lower.
func.func @leftover_nn(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{cannot lower 'nn.relu' to linalg: run nn-to-prim first}}
  %0 = "nn.relu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// A dynamic added dimension needs its size operand (the verifier says so before the pass).
func.func @dynamic_added_dim(%x: tensor<4xf32>) -> tensor<4x?xf32> {
  // expected-error @+1 {{'prim.broadcast' dynamic added dimension 1 of tensor<4x?xf32> needs its size (one index operand per dynamic result dimension)}}
  %0 = "prim.broadcast"(%x) {dims = array<i64: 0>} : (tensor<4xf32>) -> tensor<4x?xf32>
  return %0 : tensor<4x?xf32>
}

// -----

// prim.top_k: one arg-max reduction per pick (the earlier picks excluded), both results
// stacked into the [.., k] outputs.
// CHECK-LABEL: func.func @top_k
// CHECK: %[[A:.*]]:2 = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]} ins(%arg0 : tensor<4x6xf32>)
// CHECK: %[[B:.*]]:2 = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]} ins(%arg0, %[[A]]#1 : tensor<4x6xf32>, tensor<4xi32>)
// CHECK: tensor.insert_slice %[[B]]#1 into {{.*}}[0, 1] [4, 1] [1, 1] : tensor<4xi32> into tensor<4x2xi32>
func.func @top_k(%x: tensor<4x6xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>) {
  %0:2 = "prim.top_k"(%x) {k = 2 : i64} : (tensor<4x6xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>)
  return %0#0, %0#1 : tensor<4x2xf32>, tensor<4x2xi32>
}

// -----

// Run-time sizes: `sizes` operands become tensor.empty / expand_shape / extract_slice sizes.
// CHECK-LABEL: func.func @dynamic_sizes
// CHECK-SAME: (%[[X:.*]]: tensor<?x4xf32>, %[[N:.*]]: index)
// CHECK: %[[E:.*]] = tensor.empty(%{{.*}}, %[[N]]) : tensor<?x?x4xf32>
// CHECK: linalg.broadcast ins(%[[X]] : tensor<?x4xf32>) outs(%[[E]] : tensor<?x?x4xf32>) dimensions = [1]
// CHECK: %[[EI:.*]] = tensor.empty(%[[N]]) : tensor<?x3xi32>
// CHECK: linalg.generic {{.*}} outs(%[[EI]] : tensor<?x3xi32>)
// CHECK: linalg.index 0 : index
// CHECK: %[[F:.*]] = tensor.collapse_shape %[[X]] {{\[\[}}0, 1]] : tensor<?x4xf32> into tensor<?xf32>
// CHECK: tensor.expand_shape %[[F]] {{\[\[}}0, 1]] output_shape [%[[N]], 2] : tensor<?xf32> into tensor<?x2xf32>
// CHECK: tensor.extract_slice %[[X]][1, 0] [%[[N]], 4] [1, 1] : tensor<?x4xf32> to tensor<?x4xf32>
func.func @dynamic_sizes(%x: tensor<?x4xf32>, %n: index) -> (tensor<?x?x4xf32>, tensor<?x3xi32>, tensor<?x2xf32>, tensor<?x4xf32>) {
  %c0 = arith.constant 0 : index
  %d = tensor.dim %x, %c0 : tensor<?x4xf32>
  %0 = "prim.broadcast"(%x, %d, %n) {dims = array<i64: 0, 2>} : (tensor<?x4xf32>, index, index) -> tensor<?x?x4xf32>
  %1 = "prim.iota"(%n) {dim = 0 : i64} : (index) -> tensor<?x3xi32>
  %2 = "prim.reshape"(%x, %n) : (tensor<?x4xf32>, index) -> tensor<?x2xf32>
  %3 = "prim.slice"(%x, %n) {start = array<i64: 1, 0>, limit = array<i64: -1, 4>} : (tensor<?x4xf32>, index) -> tensor<?x4xf32>
  return %0, %1, %2, %3 : tensor<?x?x4xf32>, tensor<?x3xi32>, tensor<?x2xf32>, tensor<?x4xf32>
}

// -----

// prim.scan: iree_linalg_ext.scan (linear).
// CHECK-LABEL: func.func @scan
// CHECK: iree_linalg_ext.scan dimension(0) inclusive(true) ins(%arg0 : tensor<16x4xi32>)
func.func @scan(%x: tensor<16x4xi32>) -> tensor<16x4xi32> {
  %0 = "prim.scan"(%x) {axis = 0 : i64} : (tensor<16x4xi32>) -> tensor<16x4xi32>
  return %0 : tensor<16x4xi32>
}

// -----

// A dynamic operand of a map meets a static one: checked at run time, then cast.
// CHECK-LABEL: func.func @map_static_meets_dynamic
// CHECK: cf.assert %{{.*}}, "stepwell: 'prim.map' operand 0: dimension 0 is not 3 at run time
// CHECK: %[[C:.*]] = tensor.cast %arg0 : tensor<?x4xf32> to tensor<3x4xf32>
// CHECK: linalg.generic {{.*}} ins(%[[C]], %arg1 : tensor<3x4xf32>, tensor<3x4xf32>)
func.func @map_static_meets_dynamic(%x: tensor<?x4xf32>, %y: tensor<3x4xf32>) -> tensor<3x4xf32> {
  %0 = "prim.map"(%x, %y) {fn = "add"} : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// prim.scatter: iree_linalg_ext.scatter into dest plus a spare row that takes the
// out-of-range indices, sliced off after.
// CHECK-LABEL: func.func @scatter
// CHECK: %[[D:.*]] = tensor.insert_slice %arg0 into {{.*}}[0] [13] [1] : tensor<13xi32> into tensor<14xi32>
// CHECK: %[[S:.*]] = iree_linalg_ext.scatter dimension_map = [0] unique_indices(false) ins(%arg2, {{.*}} : tensor<16xi32>, tensor<16x1xi32>) outs(%[[D]] : tensor<14xi32>)
// CHECK: tensor.extract_slice %[[S]][0] [13] [1] : tensor<14xi32> to tensor<13xi32>
func.func @scatter(%d: tensor<13xi32>, %i: tensor<16xi32>, %u: tensor<16xi32>) -> tensor<13xi32> {
  %0 = "prim.scatter"(%d, %i, %u) : (tensor<13xi32>, tensor<16xi32>, tensor<16xi32>) -> tensor<13xi32>
  return %0 : tensor<13xi32>
}

// -----

// prim.block_ffn: an scf.for over the used tiles (a min-reduction finds them), each
// tile's FFN with its expert's weight slices.
// CHECK-LABEL: func.func @block_ffn
// CHECK: %[[N:.*]] = linalg.generic {{.*}}iterator_types = ["reduction"]} ins(%arg1 : tensor<6xi32>)
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (tensor<48x4xf32>)
// CHECK: tensor.extract_slice %arg0[{{.*}}, 0] [8, 4] [1, 1] : tensor<48x4xf32> to tensor<8x4xf32>
// CHECK: tensor.extract_slice %arg2[{{.*}}, 0, 0] [1, 4, 6] [1, 1, 1] : tensor<4x4x6xf32> to tensor<4x6xf32>
// CHECK: linalg.matmul ins({{.*}} : tensor<8x4xf32>, tensor<4x6xf32>)
// CHECK: arith.maximumf
// CHECK: linalg.matmul ins({{.*}} : tensor<8x6xf32>, tensor<6x4xf32>)
// CHECK: scf.yield {{.*}} : tensor<48x4xf32>
func.func @block_ffn(%x: tensor<48x4xf32>, %g: tensor<6xi32>, %wg: tensor<4x4x6xf32>, %wd: tensor<4x6x4xf32>) -> tensor<48x4xf32> {
  %0 = "prim.block_ffn"(%x, %g, %wg, %wd) {activation = "relu", block = 8 : i64} : (tensor<48x4xf32>, tensor<6xi32>, tensor<4x4x6xf32>, tensor<4x6x4xf32>) -> tensor<48x4xf32>
  return %0 : tensor<48x4xf32>
}

// -----

// A contraction with two row letters (the capacity MoE's dispatch einsum) is a matmul
// between a transpose/collapse and an expand, not one 4-loop generic (which IREE 3.13's
// CPU backend vectorized into too large vectors).
// CHECK-LABEL: func.func @contract_grouped
// CHECK: %[[T:.*]] = linalg.transpose ins(%arg0 : tensor<64x8x20xf32>) {{.*}} permutation = [1, 2, 0]
// CHECK: %[[C:.*]] = tensor.collapse_shape %[[T]] {{\[\[}}0, 1], [2]] : tensor<8x20x64xf32> into tensor<160x64xf32>
// CHECK: %[[M:.*]] = linalg.matmul ins(%[[C]], %arg1 : tensor<160x64xf32>, tensor<64x32xf32>)
// CHECK: tensor.expand_shape %[[M]] {{\[\[}}0, 1], [2]] output_shape [8, 20, 32] : tensor<160x32xf32> into tensor<8x20x32xf32>
// CHECK-NOT: linalg.generic
func.func @contract_grouped(%d: tensor<64x8x20xf32>, %x: tensor<64x32xf32>) -> tensor<8x20x32xf32> {
  %0 = "prim.contract"(%d, %x) {spec = "tec,td->ecd"} : (tensor<64x8x20xf32>, tensor<64x32xf32>) -> tensor<8x20x32xf32>
  return %0 : tensor<8x20x32xf32>
}

// -----

// update_slice: tensor.insert_slice at offsets clamped into [0, size - update size].
// CHECK-LABEL: func.func @update_slice
// CHECK: %[[D:.*]] = tensor.dim %arg0, %{{.*}} : tensor<2x?x16xf32>
// CHECK: %[[ROOM:.*]] = arith.subi %[[D]], %{{.*}} : index
// CHECK: %[[LO:.*]] = arith.maxsi %arg2, %{{.*}} : index
// CHECK: %[[P:.*]] = arith.minsi %[[LO]], %[[ROOM]] : index
// CHECK: tensor.insert_slice %arg1 into %arg0[%{{.*}}, %[[P]], %{{.*}}] [2, 1, 16] [1, 1, 1] : tensor<2x1x16xf32> into tensor<2x?x16xf32>
func.func @update_slice(%c: tensor<2x?x16xf32>, %u: tensor<2x1x16xf32>, %p: index) -> tensor<2x?x16xf32> {
  %c0 = arith.constant 0 : index
  %0 = "prim.update_slice"(%c, %u, %c0, %p, %c0) : (tensor<2x?x16xf32>, tensor<2x1x16xf32>, index, index, index) -> tensor<2x?x16xf32>
  return %0 : tensor<2x?x16xf32>
}
