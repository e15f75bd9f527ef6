"""Quality inspection (质检): the scoring sheet (config/qc.yaml), monthly sampling plans, inspection tasks
(score, comment at a second, acknowledge, appeal once, decide), live monitoring, and the scores in reports.
See docs/qc.md."""
