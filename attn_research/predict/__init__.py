"""Applying a trained run: ``load(workdir)`` gives a predictor that translates (and aligns given
pairs) or classifies."""

from attn_research.predict.classifier import Classification, ImagePredictor
from attn_research.predict.loader import load
from attn_research.predict.run_files import RunFilesError
from attn_research.predict.translator import ForcedAlignment, Translation, TranslationPredictor

__all__ = [
    "Classification",
    "ForcedAlignment",
    "ImagePredictor",
    "RunFilesError",
    "Translation",
    "TranslationPredictor",
    "load",
]
