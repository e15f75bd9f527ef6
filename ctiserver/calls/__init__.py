"""Calls as Asterisk reports them: the call tracker (AMI events to call and leg state) and live call control
(hang up, transfer, escalate) for the desktop."""
