"""Mail the user reads: the daily summary, the weekly report, churn and reminder notices."""
