"""Outages as live data: dispatchers enter, update and close planned and unplanned outages (desktop,
REST, CLI); the IVR, the screen-pop and self-service read them at once; a planned one gets its notices.

    model (pure): what an outage is, its checks and warnings, its notice plan
    store: outage_records (the outage), outage_audit (every change), outage_reports (fault calls
           attached to it), and the IVR's `outages` rows (one per affected area) kept in step
    service: add/update/close/list and the notices (SMS, and calls to important customers)
"""
