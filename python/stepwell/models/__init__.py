"""Small models written with the ``nn`` builders, and the same models in JAX.

``transformer``: the block ``stepwell demo`` compiles and the bench measures.
"""

from stepwell.models.transformer import (BlockConfig, block_inputs, block_params, transformer_block,
                                         transformer_block_jax)

__all__ = ["BlockConfig", "block_params", "block_inputs", "transformer_block",
           "transformer_block_jax"]
