"""Index internals behind :class:`late_interaction.LateInteractionIndex` (private).

Writes: ``state.py`` (stores, graph, id map, snapshot publication), ``token_store.py``,
``document_store.py``, ``hnsw.py`` (Voyager over token vectors), ``pooling.py``.
Reads: ``search_api.py`` (the public search methods), ``filters.py`` and ``snapshot.py`` (what a
search sees), ``search.py`` (typed request, exact ranking), ``candidates.py`` (ANN stage).
Folder: ``persistence.py`` (manifest, checks, encoder rebuild), ``atomic.py`` (crash-safe swap).
"""
