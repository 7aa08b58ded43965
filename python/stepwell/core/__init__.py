"""The IR core: everything a pass needs and nothing that compiles or runs.

=================  ======================================================================
``ir``             the one module that imports the MLIR bindings (``iree.compiler``)
``types``          tensor types as Python values (``TensorType``), dtypes
``diagnostics``    ``file:line:col: error: ...`` and ``StepwellError``
``opspec``         the op-spec framework: one declarative spec per op, one registry
``verifier``       spec checks plus MLIR's verifier, after parsing and every pass
``module``         ``Module``, ``parse``, ``parse_file``
``passes_base``    the pass framework: dataclass passes, registry, pattern helpers
``pipeline``       textual pipelines and their runner (``sw.Pipeline``)
``constants``      dense MLIR constants as numpy arrays
``stablehlo``      reading StableHLO input: detection, Shardy stripping, bytecode
``quantize``       weight quantization math (numpy) behind the quantized ops
``files``          atomic file writes
``hooks``          the few calls a lower layer makes into a higher one, registered
``version``        ``__version__``
=================  ======================================================================

Nothing here imports another stepwell package (``tests/python/test_layering.py``).
"""
