"""Outbound campaigns: outage notices, arrears reminders and satisfaction surveys.

Pure cores (rules, pacing, scheduler, contacts parsing, AMI result mapping) decide;
`store` persists campaigns, contacts and attempts; `dialer` is the asyncio edge
that writes each attempt before it dials and reconciles in-flight ones on restart.
"""
