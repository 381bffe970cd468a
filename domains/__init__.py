"""Domain adapters for the ``tickets`` core: one package per domain, each importing only what
its domain needs. They are registered lazily in ``tickets.registry``."""
