"""Scenario (c): the gap exceeds the history (`small:` keeps 3 publications): 6 publications
are missed, so the resubscribe reports `recovered=False` and delivers none of them."""

from common import main
from cut import cut_scenario

main("python gap exceeds history", lambda: cut_scenario("small:gap-", 6, False))
