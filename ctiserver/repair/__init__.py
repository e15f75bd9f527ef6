"""Repair orders to crews: dispatched by area, acknowledged, arrival, the 30-minute report (cause,
location, expected restoration), restoration; each step's deadline from the one deadline table
(workorders.yaml `crews:`), with a reminder before it and an escalation to the shift leader after it.

    engine (pure): the order's steps as a table, its deadlines, the alerts due at `now`
    model: crews.yaml (crews, their areas and phones, the shift leader, area classes)
    store / service: the orders in the database; the watch loop that sends alerts
    http: the crew's mobile page (/crew/<token>), the dispatch board (/dispatch) and its API
"""
