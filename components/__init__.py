"""The Dash dashboard: one module per page or panel (``wall``, ``overview``, ``line_page``
with ``oee_panel``, ``downtime_panel``, ``energy_panel``; ``machine_page``), the pure
builders they share (``stops_list``, ``downtime_charts``, ``tiles``; colours and
formatting in ``theme``), the range bar (``ranges``), view models (``line_view``), the
one door to data (``data``) and ``app_factory.create_app``."""
