"""Pictures of results: the cost/throughput Pareto view (PNG, SVG, HTML) and its terminal text.

matplotlib is imported only when a picture is written, so the command line stays light.
"""
