"""The attempt log: every contact made, and every contact not made, with its reason.

``log``: the rows a stage writes (``attempt_row``), its tally, and the one way anything else (a payment, a promise,
a plan, an agency placement) takes queued contact back (``suppress_pending``). It sits below every wing that
writes or reads attempts, contact and money alike.
"""
