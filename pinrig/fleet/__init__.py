"""Guests beyond this machine: pool.py (host pools, placement), connection.py (SSH to a host),
checks.py (`rig hosts check`), shipping.py (kernels and images to the hosts, their gc),
machine.py (QEMU on a host), remote.py (hosts and slots in a run, the sharded run)."""
