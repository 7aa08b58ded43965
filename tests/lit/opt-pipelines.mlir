// Our passes and upstream MLIR passes share one pipeline, anchored or not.
// RUN: stepwell-opt %s -p nn-canonicalize,canonicalize,cse | FileCheck %s
// RUN: stepwell-opt %s -p 'builtin.module(func.func(canonicalize,cse),nn-canonicalize)' | FileCheck %s --check-prefix=ANCHORED
// RUN: stepwell-opt %s --nn-canonicalize -p cse | FileCheck %s --check-prefix=FLAGS
// RUN: stepwell-opt < %s -p nn-canonicalize | FileCheck %s --check-prefix=STDIN
// RUN: stepwell-opt %s --timing -o %t 2>&1 -p nn-canonicalize | FileCheck %s --check-prefix=TIMING

// nn-canonicalize removes the no-op reshape, cse merges the equal additions.
// (Upstream cse leaves unregistered ops such as nn.exp alone: it cannot know they are pure.)
// CHECK-LABEL: func.func @f
// CHECK-NEXT: %[[S:.+]] = arith.addf %arg0, %arg0
// CHECK-NEXT: %[[E:.+]] = "nn.exp"(%[[S]])
// CHECK-NEXT: return %[[E]], %[[S]]

// ANCHORED-LABEL: func.func @f
// ANCHORED-NOT: nn.reshape
// ANCHORED: return

// FLAGS-LABEL: func.func @f
// FLAGS-NOT: nn.reshape

// STDIN-LABEL: func.func @f
// STDIN-NOT: nn.reshape

// TIMING: Execution time report
// TIMING: Total Execution Time:
// TIMING: nn-canonicalize
// TIMING: Total

func.func @f(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %s0 = arith.addf %x, %x : tensor<4xf32>
  %s1 = arith.addf %x, %x : tensor<4xf32>
  %r = "nn.reshape"(%s0) : (tensor<4xf32>) -> tensor<4xf32>
  %0 = "nn.exp"(%r) : (tensor<4xf32>) -> tensor<4xf32>
  return %0, %s1 : tensor<4xf32>, tensor<4xf32>
}
