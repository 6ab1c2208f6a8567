"""The demo plant, a wing of its own: the OPC UA plant simulator (``simulator``, with the
machines' behaviour in ``machine_model``), scenario replay (``scenario``, files in
``scenarios/``) and the demo history written before a fresh demo starts (``history``).

Production code never imports it: only the entry point (``app.py``), ``bench/`` and
``tests/`` do (``tests/test_layout.py`` checks this, and that the wing has no import
circle). It may import the collector's side (``collectors.mapping``), ``store``,
``domain`` and ``config``.
"""
