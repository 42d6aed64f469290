"""The evaluation report: what a run measured, read and written in one shape.

- ``fields``: how a field is declared once (type and range, unit, CSV column, description) and what is derived from
  the declarations: JSON Schema entries (``schema_of``), CSV columns (``csv_columns``), plain dicts (``plain``).
- ``cells``: one latency cell, one generation cell.
- ``throughput``: the whole-dataset throughput (``DatasetThroughput``, its one parser) and its reading for people.
- ``results``: a variant's result and the report, with their JSON round trip.
- ``csv_export``: the flat CSV export.
- ``compare``: each variant against fp32, in numbers and words, per hardware target.
- ``table``: the CLI's text table.
- ``schema``: the JSON Schema of a saved or imported report, assembled from the fields, and ``check``.

Callers import each name from the module that holds it.
"""
