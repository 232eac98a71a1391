"""Blind A/B review of two eval runs, as in the MediX-R1 doctor study: votes in SQLite, win rates with a 95%
Wilson interval, Cohen's kappa between reviewers. The app's Review tab and ``medix-r1 review`` use it."""

from medix_r1.review.stats import WinRate, cohen_kappa, wilson_interval, win_rate
from medix_r1.review.store import CHOICES, Pair, Review, create_review, format_results, results_csv

__all__ = ["CHOICES", "Pair", "Review", "WinRate", "cohen_kappa", "create_review", "format_results",
           "results_csv", "wilson_interval", "win_rate"]
