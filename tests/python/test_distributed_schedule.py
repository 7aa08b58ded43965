"""No device waits for another's compute except at a collective: read from IREE's stream
IR (``stepwell.distributed.schedule``) of partitioned modules, and of the trap the
research note describes (a reduce onto device 0, whose matmul IREE then fuses with the
sum, so device 0 waits for device 1 before computing anything)."""

from __future__ import annotations

import stepwell as sw
from stepwell.compiler import devices, driver
from stepwell.distributed import schedule
from distributed_cases import sharded


def _stream(case, n):
    m, _, mesh = sharded(case, n)
    return driver.compile_to(devices.partition(m, mesh), "stream", target="cpu")


def test_tensor_parallel_mlp_computes_without_waiting():
    regions = schedule.regions(_stream("mlp", 2))
    computing = [r for r in regions if r.computes]
    assert {r.device for r in computing} == {"d0", "d1"}
    assert schedule.compute_waits(_stream("mlp", 2)) == []
    # the sums do wait for the other device: the analysis sees cross-device waits
    assert any(r.waits_for for r in regions)


def test_attention_block_on_four_devices_computes_without_waiting():
    text = _stream("attention", 4)
    assert {r.device for r in schedule.regions(text) if r.computes} == {"d0", "d1", "d2", "d3"}
    assert schedule.compute_waits(text) == []


# The research prototype's Megatron MLP with the sum reduced onto device 0 only.
TRAP = """
module attributes {nn.mesh = {axes = ["model"], shape = array<i64: 2>}, nn.partitioned} {
func.func private @part(%x: tensor<16x64xf32>, %w1: tensor<64x128xf32>, %w2: tensor<128x64xf32>) -> tensor<16x64xf32> {
  %c0 = arith.constant 0.0 : f32
  %e1 = tensor.empty() : tensor<16x128xf32>
  %z1 = linalg.fill ins(%c0 : f32) outs(%e1 : tensor<16x128xf32>) -> tensor<16x128xf32>
  %h = linalg.matmul ins(%x, %w1 : tensor<16x64xf32>, tensor<64x128xf32>) outs(%z1 : tensor<16x128xf32>) -> tensor<16x128xf32>
  %e2 = tensor.empty() : tensor<16x64xf32>
  %z2 = linalg.fill ins(%c0 : f32) outs(%e2 : tensor<16x64xf32>) -> tensor<16x64xf32>
  %p = linalg.matmul ins(%h, %w2 : tensor<16x128xf32>, tensor<128x64xf32>) outs(%z2 : tensor<16x64xf32>) -> tensor<16x64xf32>
  return %p : tensor<16x64xf32>
}
func.func @main(%x0: tensor<16x64xf32> {iree.abi.affinity = #hal.device.promise<@d0>},
                %a0: tensor<64x128xf32> {iree.abi.affinity = #hal.device.promise<@d0>},
                %b0: tensor<128x64xf32> {iree.abi.affinity = #hal.device.promise<@d0>},
                %x1: tensor<16x64xf32> {iree.abi.affinity = #hal.device.promise<@d1>},
                %a1: tensor<64x128xf32> {iree.abi.affinity = #hal.device.promise<@d1>},
                %b1: tensor<128x64xf32> {iree.abi.affinity = #hal.device.promise<@d1>})
    -> (tensor<16x64xf32> {iree.abi.affinity = #hal.device.promise<@d0>}) {
  %p0 = call @part(%x0, %a0, %b0) : (tensor<16x64xf32>, tensor<64x128xf32>, tensor<128x64xf32>) -> tensor<16x64xf32>
  %p1 = call @part(%x1, %a1, %b1) : (tensor<16x64xf32>, tensor<64x128xf32>, tensor<128x64xf32>) -> tensor<16x64xf32>
  %t = flow.tensor.transfer %p1 : tensor<16x64xf32> to #hal.device.promise<@d0>
  %s = arith.addf %p0, %t : tensor<16x64xf32>
  return %s : tensor<16x64xf32>
}
}
"""


def test_the_reduce_onto_one_device_trap_is_detected():
    text = driver.compile_to(sw.parse(TRAP), "stream", target="cpu")
    waiting = schedule.compute_waits(text)
    assert [(r.device, sorted(r.waits_for)) for r in waiting] == [("d0", ["d1"])]
