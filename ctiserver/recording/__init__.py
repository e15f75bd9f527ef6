"""Call recording: Asterisk's MixMonitor on every agent leg, compressed and indexed after the call.

    recorder ─AMI Setvar CTI_RECORD_DIR─▶ dialplan [cti-record] on each answered agent leg (Dial U(), Queue gosub):
        MixMonitor t(caller) r(agent) + done marker, UserEvent CtiRecording ─▶ core.RecorderCore
    AMI Hangup (that channel) / a sweep of the spool ─▶ finalize: sox -M (caller left, agent right) ─▶ opusenc
        ─▶ <root>/<yyyy>/<mm>/<dd>/<name>.opus, sha256, a `recordings` row, a `recording.done` event
    daily (leader) ─▶ retention: rows and files past their kind's keep time deleted, each one logged

Everything the finalizer needs is in the spool file's name (call id, channel, agent, start) and the event
log (queue, number, customer), so a recording started before a CTI restart is indexed when it returns.
See docs/qc.md.
"""
