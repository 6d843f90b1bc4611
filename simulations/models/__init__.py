"""Models: one adapter interface (:mod:`.adapters`), architectures, the cached model zoo and
its training, the human-proxy labeller, and a pool that trains several at once."""
