"""The index benchmark behind ``python benchmarks/index.py`` (its docstring says what it measures).

corpus      seeded synthetic playbooks and queries (vocabulary.toml)
timing      a timed embedder, LanceDB calls split into phases, latency percentiles
baseline    numpy exact cosine + bm25s, fused like the LanceDB hybrid; exact recall
build       build rate and incremental update with MiniLM
latency     query latency against the baseline, then recall and a large update
diagnosis   where a hybrid query's time goes, and a leaner hybrid
recall      vector recall@10 against exact, and the ANN knob sweep
report      the Markdown report (report_search: its query-latency part)
cli         options, threads, the run

It uses distill's public API only: ``PlaybookStore``, ``Retriever`` (``search``,
``vector_rows``, ``text_rows``), ``fuse`` and ``ranked_hits``.
"""

import os

# before anything imports transformers: never reach for a hub, no tokenizer thread pools
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
