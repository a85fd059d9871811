"""Scenarios in, ranked recommendations out: backends, policies, batch runs, comparisons."""
