"""Evaluation beyond the loss, one module per concept: BLEU and alignments for translation,
attention maps over images with their mass inside object boxes (``attention_maps``), and
figures (``alignment_figures``, ``image_figures``).
"""
