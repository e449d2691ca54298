"""Frontends: the DSL and the torch importer. They build `archir.Graph`s."""
