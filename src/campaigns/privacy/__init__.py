"""Personal data: finding a customer by a blind index, retention, key rotation, a subject's export and erasure.

The sealing itself (keys, sealed values and the column type) is the ``campaigns.sealing`` wing, below the database
models that use it; this wing sits above the database.

``lookup``: blind-index lookups. ``retention``: what is kept how long. ``rotation``: resealing under a new key.
``subject``: a subject's export and erasure, and names masked in previews.
"""
