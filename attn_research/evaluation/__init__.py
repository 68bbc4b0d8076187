"""Evaluation beyond the loss: attention maps and their mass inside object boxes
(``attention_maps``) and figures of maps over images (``image_figures``).
"""
