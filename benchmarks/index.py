"""Index benchmark: build rate, incremental update, query latency and ANN recall.

    python benchmarks/index.py [--rows N] [--build-rows N] [--queries Q]
                               [--out benchmarks/results/index.md] [--seed S]
                               [--ann-threshold T] [--blas-threads B] [--skip-minilm-query]
                               [--skip-large-update] [--fusion rrf|weighted] [--alpha A]
                               [--workdir DIR] [--keep]

All inputs are synthetic playbooks generated here (seeded: every run sees the same texts),
written as ``RagSample`` objects and handed to the store API (``PlaybookStore.build/update``,
``Retriever.search``) exactly as ``distill index`` does.

1. Build rate (``--build-rows``, default 2 000, real all-MiniLM-L6-v2): the full
   ``PlaybookStore.build`` against the raw ``SentenceTransformer.encode`` of the same texts in
   the same run, by the same model loaded on its own (measured before and after the build; the
   mean is the reference).
   Target: build docs/s ≥ 0.85 × raw encode docs/s.
2. Incremental update on that table with 1 % of the rows changed (new text, new sig_hash):
   the IndexReport must say exactly those rows were embedded (and nothing inserted or deleted),
   and the update must take ≤ 5 % of the full build's seconds.
3. Query latency at ``--rows`` (default 100 000), the table built with the hashing embedder
   (MiniLM would need ~40 min to embed 100k texts on 2 cores): ``Retriever.search`` in vector,
   fts and hybrid mode against an in-memory baseline in the same process over the same vectors
   and texts: numpy exact cosine + bm25s, fused by ``distill.index.search.fuse`` with the same
   fusion as the LanceDB hybrid (the Retriever's default unless ``--fusion``) over the same
   candidate pool. p50/p95 over ``--queries`` queries (default 200), modes interleaved per
   query. Measured twice: with the hashing embedder embedding each query, and with MiniLM
   embedding each query (vectors still from the hashing embedder: the ranking is meaningless,
   the latency is what a MiniLM index of that size costs).
   Target: hybrid p50 ≤ 2 × baseline hybrid p50.
   A diagnosis table splits a hybrid query into its two sides (``Retriever.vector_rows`` /
   ``text_rows`` as shipped, then the same calls selecting only id + score) and times a leaner
   hybrid built from them (fusion on ids, one ``take_row_ids`` for the top rows; also with the
   two sides in two threads), checking it returns the same top ids.
4. ANN: at ≥ ``ann_threshold`` rows (default 100 000) the store builds an HNSW-SQ index.
   recall@10 of the store's vector search against numpy exact search over the same vectors,
   plus a small sweep of query-time knobs (ef, nprobes, refine_factor) to show the trade-off;
   the same index config is also trained on the MiniLM build table (``--no-minilm-ann`` skips).
   Use ``--rows 99999`` (or ``--ann-threshold``) to see the other side of the threshold.
5. Informative: an update of the ``--rows`` table with 1 % changed, split into phases.

LanceDB and the store calls are split into phases by wrapping LanceTable / connection methods
(outermost call only) while build and update run; the embedder is wrapped to time ``embed``.
Check the load average in the report: another job on a 2-core box (torch's OpenMP threads
spin-wait badly when oversubscribed) makes the build ratio meaningless.

BLAS threads: numpy's OpenBLAS is pinned to ``--blas-threads`` (default 1) with threadpoolctl
for the whole run; torch keeps its own OpenMP threads (the two fighting on 2 cores made exact
search 7× slower).

A Markdown report goes to ``--out`` and stdout; progress to stderr. Exit status 0 when every
target passed, 1 otherwise. The baseline needs ``bm25s`` (``pip install bm25s``; not a
dependency of distill). A quick check that the whole path runs (a minute or two on an idle
2-core box; the targets are meant for the default sizes, not this one):

    python benchmarks/index.py --rows 2000 --build-rows 200 --queries 20 --skip-minilm-query

The code is the package ``benchmarks/index_bench/`` (distill's public API only); this file
only runs it.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from benchmarks.index_bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
