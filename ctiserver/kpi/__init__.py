"""KPIs from the events: facts, metrics, Erlang staffing, reports (docs/packages/kpi.md, docs/kpis.md)."""
