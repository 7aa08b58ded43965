"""Text generation with an exported decoder: prefill the prompts into a KV cache, then
decode one token per step, sampling greedily or with temperature, top-k and top-p.

    import stepwell as sw
    model = sw.load("out/gpt2")                 # an export with prefill/decode entry points
    result = sw.generate(model, [[464, 2068], [31373]], max_new_tokens=32,
                         sampler=sw.Sampler(temperature=0.8, top_k=40, seed=0))
    result.tokens, result.tokens_per_s

``stepwell generate FOLDER --prompt 464,2068 --max-new-tokens 32`` runs it from the
command line. The decoder protocol (docs/llm.md): ``prefill(ids [b, s], lengths [b])``
and ``decode(token [b], position [b], cache)`` each return ``{"logits": [b, vocab],
"cache": ...}``; the export's ``metadata["decoder"]`` names them and gives the
vocabulary size and the cache length.

=============  ================================================================
``sampling``   ``Sampler``: greedy, temperature, top-k, top-p, seeded
``loop``       ``generate()``: the checks, prefill, the decode steps, timings
=============  ================================================================
"""

from __future__ import annotations

from stepwell.generation.loop import Decoder, Result, generate
from stepwell.generation.sampling import Sampler

__all__ = ["generate", "Sampler", "Result", "Decoder"]
