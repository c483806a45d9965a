"""Adapters: the ports implemented over real technologies."""
