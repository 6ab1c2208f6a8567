"""The live data path's OPC UA side: plant simulator, scenario replay and the collector
that subscribes to OPC UA servers and writes canonical events to Redis."""
