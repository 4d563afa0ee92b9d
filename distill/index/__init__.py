"""The index: embedders, the LanceDB store and hybrid search."""

from distill.index.embedders import (
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    embedder_for,
    make_embedder,
)
from distill.index.search import PlaybookSearch, Retriever, SearchHit, fuse
from distill.index.store import IndexManifest, IndexReport, PlaybookStore, read_playbooks

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "IndexManifest",
    "IndexReport",
    "PlaybookSearch",
    "PlaybookStore",
    "Retriever",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "embedder_for",
    "fuse",
    "make_embedder",
    "read_playbooks",
]
