"""The Dash dashboard: one module per page or panel (``wall``, ``overview``, ``line_page``
with ``oee_panel``, ``downtime_panel``, ``energy_panel``; ``machine_page``), the range
bar (``ranges``), live view models (``live``), the one door to data (``data``) and
``app_factory.create_app``."""
