"""The contact ladder as the lender configures it (``config/ladder.yaml``): stages, their days past due, channels,
experiment arms, the plan terms and the agency hand-over.

``config``: the ladder's model, read and checked once. It is vocabulary shared by the wings that act on it (contact
decides who is contacted, money settles plans and agency placements) and imports neither.
"""
