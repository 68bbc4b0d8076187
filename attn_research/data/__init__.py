"""Input pipelines, one module per concept. Import the module a task needs
(``from attn_research.data import images``); this package imports none of them."""
