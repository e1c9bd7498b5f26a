"""Personal data at rest: sealed values and the keys behind them (issue 13).

A customer's name, email and phone, and every rendered message (recipient, subject, bodies), are stored sealed:
AES-256-GCM per value, under a key whose id is written beside the value, so keys can be rotated while stage runs go
on. The column a value belongs to is authenticated with it, so a value copied into another column does not open.
Equality lookups (an inbound STOP by phone number, a provider's unsubscribe by email) go through a keyed blind index
(HMAC-SHA256 with a key of its own), never through the plain value.

``keys``: where the keys come from (settings, a Prefect Secret block, or the installation's private key file) and
the one clear error when they are missing. ``seal``: seal and open one value; the column type that does it on the
way in and out of the database. This wing sits below ``db`` (its models use the column type) and imports nothing
of the database.
"""
