"""Hand-off of a recommendation to the tools that run it: vLLM and SkyPilot."""
