"""Input pipelines, one module per concept (image sources and pipelines, the generated
cluttered-objects dataset, translation corpora and tokenizers).

Import the module a task needs (``from attn_research.data import images``); this package
imports none of them, so a text task never loads the image stack and vice versa.
"""
