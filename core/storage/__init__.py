"""What the lab keeps on disk, under the store root (``cache/`` by default, ``QLAB_CACHE_DIR`` moves it): the model
store of built variants and bundled models (``store``), the saved runs with their JSON and CSV exports and imports
(``history``; storage, so it imports no charts), the log of exports and the dashboard's downloads (``exports``), the
share links that can be revoked (``links``) and the append-only audit log (``audit``). These modules sit below the
engine and the pages: they read and write files, and never import the recipes, the charts or the job queue.
"""
