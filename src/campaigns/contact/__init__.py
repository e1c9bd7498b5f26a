"""Who is contacted, how, and with what message: ladder, cohorts, strategy, rendering, the attempt log."""
