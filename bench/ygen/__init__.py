"""ygen: one load generator speaking the y-websocket protocol, for bench/yjs_compare.py.

Modules: ``wire`` (message encoding, the latency marker), ``client`` (a lean sans-I/O
WebSocket client on asyncio), ``targets`` (install and start the servers compared),
``scenarios`` (the four measurements), ``report`` (medians, table, JSON, plot).
``pycrdt_server.py`` is a stand-alone script run by the pycrdt-websocket scratch venv.
"""
