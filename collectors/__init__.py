"""The live data path's OPC UA side: the collector that subscribes to OPC UA servers and
writes canonical events to Redis (through ``store.streams``). The demo plant (simulator,
scenario replay, demo history) is the ``collectors.sim`` wing, which nothing here imports."""
