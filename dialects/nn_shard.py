"""``nn.reshard``: where a value moves from one sharding to another (docs/distributed.md).

    %1 = "nn.reshard"(%0) {nn.sharding = [unit, unit]} : (tensor<8x64xf32>) -> tensor<8x64xf32>

Its value is its operand's; ``nn.sharding`` says how the result is laid out over the
module's mesh, the operand's own annotation how it was laid out (an ``nn.unreduced``
operand is a partial sum: the reshard is then an all-reduce). ``nn-partition``
inserts it where two shardings conflict and expands it into transfers plus slices,
concatenations or adds; on one device it is the identity (``nn-to-prim`` drops it).
"""

from __future__ import annotations

from stepwell.core.opspec import op

op("nn.reshard", "Identity that moves a value to the sharding in its nn.sharding attribute.",
   operands=["x"], infer=lambda s: s.x, reference=lambda s, x: x)
