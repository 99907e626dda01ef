"""Guests beyond this machine: pool.py (host pools, placement), remote.py (guests on pool hosts)."""
