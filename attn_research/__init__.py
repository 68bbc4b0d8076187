"""attn_research: attention mechanisms in JAX/Flax, with shared training loops."""
