"""Provider error codes and what they mean to us (no client library needed to read them)."""

# Twilio error codes that mean "never to this number", with our reason code.
PERMANENT_CODES = {
    21610: "opted_out",  # the recipient replied STOP to this sender
    21211: "invalid_address",  # not a valid 'To' number
    21614: "invalid_address",  # not a mobile number
    21612: "invalid_address",  # not reachable from this sender
    21408: "invalid_address",  # region not enabled
    30006: "invalid_address",  # landline or unreachable carrier
}
