"""The customer record: account, tier, phones and outages as the IVR, the screen-pop and campaigns read them."""
