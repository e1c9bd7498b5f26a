"""Who is contacted, how, and with what message: cohorts, strategy, rendering, one chunk through the steps."""
