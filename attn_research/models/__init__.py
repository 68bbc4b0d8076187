"""Models built on the attention library: Transformer blocks, translators, image classifiers."""
