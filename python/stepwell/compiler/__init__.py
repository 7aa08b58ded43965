"""From the ``linalg`` stage to running code: the stage ladder, IREE, the cache, the runtime.

=====================  ==================================================================
``stages``             ``sw.lower(m, to=stage)``: the ladder nn -> prim -> linalg -> vector,
                       then IREE's dispatch and vmfb
``driver``             ``sw.compile``: checks, flags, ``iree-compile``, its errors
``cache``              the on-disk cache of compiled modules
``runtime``            ``Executable``: numpy in, numpy out, on IREE's runtime
``devices``            compiling a partitioned module for several devices
``multidevice``        running it: N runtime devices, inputs split, results joined
``inputs``             values in ``iree-run-module``'s syntax (``stepwell run``)
``stablehlo_screen``   StableHLO ops IREE 3.13 cannot compile, named first
``quant_flags``        IREE flags that keep dequantized weights fused
=====================  ==================================================================

(DESIGN.md calls this layer ``compile``; a subpackage of that name would replace the
function ``sw.compile`` by the module as soon as it is imported.)
"""

from stepwell.compiler.driver import (check_compilable, clear_cache, compile, compile_to,
                                      compile_vmfb, input_type, iree_diagnostics, prepare)

__all__ = ["compile", "compile_to", "compile_vmfb", "check_compilable", "clear_cache",
           "input_type", "prepare", "iree_diagnostics"]
