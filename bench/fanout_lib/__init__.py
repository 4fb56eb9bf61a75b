"""Helpers of the fan-out ceiling benchmark (``python -m bench.fanout_ceiling``).

``frames`` builds the broadcast payload; ``sendpath`` holds the non-blocking send paths under test;
``variants`` holds the servers and broadcast loops compared; ``server`` runs one variant per process;
``client`` holds viewer sockets in other processes; ``control`` is the JSON-lines channel between them
and the orchestrator.
"""
