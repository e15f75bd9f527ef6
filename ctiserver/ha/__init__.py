"""High availability: several `ctiserver serve` nodes on one PostgreSQL, exactly one leading (docs/ha.md).

    lease.py   the lease as a pure state machine (attempt results + a monotonic clock -> role changes)
    pg.py      the lease row, the epochs and the claims in PostgreSQL (thin SQL)
    node.py    a node's election as a feature: renews, starts/stops the leader FeatureGroup; `claim()`
    config.py  the `ha:` block of config/ctiserver.yaml
"""
