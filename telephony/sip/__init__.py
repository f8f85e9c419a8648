"""The SIP carrier (telephony.sip.carrier) and its SIP response → cause table."""
