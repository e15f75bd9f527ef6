"""SMS to customers through a Kannel gateway (bearerbox + smsbox, HTTP sendsms, delivery reports).

    sms.yaml ─▶ model (config, templates)    encoding (GSM 7-bit or UCS-2, parts)   engine (pure: states, retries)
    SmsService.send() ─▶ sms_messages table ─▶ sender loop ─HTTP sendsms─▶ smsbox ─▶ bearerbox ─▶ SMSC
    SMSC ─DLR─▶ bearerbox ─▶ smsbox ─GET dlr-url─▶ /api/sms/dlr ─▶ engine.after_dlr ─▶ the message's state
    a message that cannot be delivered after its retries ─▶ the fallback (a call) given by the wiring

Every message is stored before it is sent, so a gateway that is down only delays it.
"""
