"""Scenario (b): a recoverable subscription (`chat:`, force_recovery) loses its connection,
misses 3 publications and gets exactly those back, in order, on the automatic resubscribe."""

from common import main
from cut import cut_scenario

main("python recovery", lambda: cut_scenario("chat:rec-", 3, True))
